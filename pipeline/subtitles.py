"""WebVTT subtitles that carry each segment's transcript and predicted emotion."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def _timestamp(seconds: float) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def to_webvtt(cues: Iterable[tuple[float, float, str]]) -> str:
    """A WebVTT document from (start, end, text) cues, in time order."""
    lines = ["WEBVTT", ""]
    for i, (start, end, text) in enumerate(sorted(cues), 1):
        assert end >= start, f"cue {i} ends ({end}) before it starts ({start})"
        body = text.replace("-->", "->").strip() or "…"
        lines += [str(i), f"{_timestamp(start)} --> {_timestamp(end)}", body, ""]
    return "\n".join(lines)


def write_webvtt(path: str | Path, cues: Iterable[tuple[float, float, str]]) -> Path:
    """Write cues atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(to_webvtt(cues), encoding="utf-8")
    tmp.replace(path)
    return path
