"""WebVTT and SubRip subtitles that carry each segment's transcript and predicted emotion, and a JSON document
shaped like whisper's ``--output_format json``.

The formats are written by webvtt-py; ``whisper.utils``' writers were not used because they take a whole
transcription result (segments of a decoding run) and fixed options, not free (start, end, text) cues.

Notes (a warning that the model was trained on placeholder labels, say) go where each format lets a reader see
them first: WebVTT ``NOTE`` blocks after the ``WEBVTT`` line; JSON a ``notes`` list; SubRip has no comments, so
the notes are a first cue, numbered 1, from 0 s to :data:`SRT_NOTE_SECONDS` (on screen over whatever else plays
then: players stack overlapping cues), which every player shows and every parser reads as an ordinary cue.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from pathlib import Path

import webvtt
from webvtt.models import Timestamp

from pipeline.files import atomic_write

Cue = tuple[float, float, str]
SRT_NOTE_SECONDS = 5.0


def _text(text: str) -> str:
    # webvtt-py refuses "-->" and blank lines in a cue (they would end it); an empty cue gets a visible mark
    lines = [line.strip() for line in text.replace("-->", "->").splitlines()]
    return "\n".join(line for line in lines if line) or "…"


def _note(text: str) -> str:
    # a NOTE block ends at a blank line and may not hold "-->"
    return " ".join(str(text).replace("-->", "->").split())


def _captions(cues: Iterable[Cue], notes: Iterable[str] = ()) -> webvtt.WebVTT:
    captions = []
    for i, (start, end, text) in enumerate(sorted(cues, key=lambda c: (c[0], c[1])), 1):
        start, end = float(start), float(end)
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"cue {i} has a time that is not a finite number: {start} --> {end}")
        if end < start:
            raise ValueError(f"cue {i} ends ({end}) before it starts ({start})")
        captions.append(webvtt.Caption(str(Timestamp.from_seconds(max(start, 0.0))),
                                       str(Timestamp.from_seconds(max(end, 0.0))), _text(str(text)),
                                       identifier=str(i)))
    return webvtt.WebVTT(captions=captions, header_comments=[_note(n) for n in notes if _note(n)] or None)


def to_webvtt(cues: Iterable[Cue], notes: Iterable[str] = ()) -> str:
    """A WebVTT document from (start, end, text) cues (seconds), in time order; ``notes`` as NOTE blocks first."""
    return _captions(cues, notes).content


def to_srt(cues: Iterable[Cue], notes: Iterable[str] = ()) -> str:
    """A SubRip document from (start, end, text) cues (seconds), in time order; ``notes`` as a first cue."""
    document = _captions(cues)
    notes = [_note(n) for n in notes if _note(n)]
    if notes:
        captions = _captions([(0.0, SRT_NOTE_SECONDS, "\n".join(notes))]).captions + document.captions
        for i, caption in enumerate(captions, 1):
            caption.identifier = str(i)
        document = webvtt.WebVTT(captions=captions)
    out = io.StringIO()
    document.write(out, format="srt")
    text = out.getvalue()
    return text if not text or text.endswith("\n") else text + "\n"


def write_webvtt(path: str | Path, cues: Iterable[Cue], notes: Iterable[str] = ()) -> Path:
    """Write cues as WebVTT to ``path``, atomically."""
    return Path(atomic_write(path, to_webvtt(cues, notes)))


def write_srt(path: str | Path, cues: Iterable[Cue], notes: Iterable[str] = ()) -> Path:
    """Write cues as SubRip to ``path``, atomically."""
    return Path(atomic_write(path, to_srt(cues, notes)))


def _plain(value):
    """JSON-ready: NaN and infinities as null, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(segments: Iterable[dict], *, notes: Iterable[str] = (), **extra) -> str:
    """whisper's JSON shape: ``{"text", "segments": [{"id", "start", "end", "text", ...}], ...}``.

    segments: dicts with ``start``, ``end``, ``text`` and any other fields (predictions); ``text`` of the document
    is theirs joined. ``notes`` and ``extra`` (metadata) are added as top-level keys.
    """
    rows = []
    for i, seg in enumerate(sorted(segments, key=lambda s: (s["start"], s["end"]))):
        start, end = float(seg["start"]), float(seg["end"])
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"segment {i} has bad times: {start} --> {end}")
        rows.append({"id": i, **seg, "start": start, "end": end, "text": str(seg.get("text") or "")})
    document = {"text": " ".join(r["text"] for r in rows if r["text"]).strip(), "segments": rows,
                "notes": [n for n in notes if n], **extra}
    return json.dumps(_plain(document), ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def write_json(path: str | Path, segments: Iterable[dict], *, notes: Iterable[str] = (), **extra) -> Path:
    """Write :func:`to_json` to ``path``, atomically."""
    return Path(atomic_write(path, to_json(segments, notes=notes, **extra)))
