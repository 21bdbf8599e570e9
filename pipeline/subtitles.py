"""WebVTT and SubRip subtitles that carry each segment's transcript and predicted emotion.

The formats are written by webvtt-py; ``whisper.utils``' writers were not used because they take a whole
transcription result (segments of a decoding run) and fixed options, not free (start, end, text) cues.
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable
from pathlib import Path

import webvtt
from webvtt.models import Timestamp

from pipeline.files import atomic_write

Cue = tuple[float, float, str]


def _text(text: str) -> str:
    # webvtt-py refuses "-->" and blank lines in a cue (they would end it); an empty cue gets a visible mark
    lines = [line.strip() for line in text.replace("-->", "->").splitlines()]
    return "\n".join(line for line in lines if line) or "…"


def _captions(cues: Iterable[Cue]) -> webvtt.WebVTT:
    captions = []
    for i, (start, end, text) in enumerate(sorted(cues), 1):
        start, end = float(start), float(end)
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"cue {i} has a time that is not a finite number: {start} --> {end}")
        if end < start:
            raise ValueError(f"cue {i} ends ({end}) before it starts ({start})")
        captions.append(webvtt.Caption(str(Timestamp.from_seconds(max(start, 0.0))),
                                       str(Timestamp.from_seconds(max(end, 0.0))), _text(str(text)),
                                       identifier=str(i)))
    return webvtt.WebVTT(captions=captions)


def to_webvtt(cues: Iterable[Cue]) -> str:
    """A WebVTT document from (start, end, text) cues (seconds), in time order."""
    return _captions(cues).content


def to_srt(cues: Iterable[Cue]) -> str:
    """A SubRip document from (start, end, text) cues (seconds), in time order."""
    out = io.StringIO()
    _captions(cues).write(out, format="srt")
    text = out.getvalue()
    return text if not text or text.endswith("\n") else text + "\n"


def write_webvtt(path: str | Path, cues: Iterable[Cue]) -> Path:
    """Write cues as WebVTT to ``path``, atomically."""
    return Path(atomic_write(path, to_webvtt(cues)))


def write_srt(path: str | Path, cues: Iterable[Cue]) -> Path:
    """Write cues as SubRip to ``path``, atomically."""
    return Path(atomic_write(path, to_srt(cues)))
