"""Manifests as dataclasses, in the spirit of Lhotse: what a corpus is made of, before and after extraction."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class WordTiming:
    """One recognised word: its text, where it lies in the video (seconds) and the recogniser's confidence."""

    word: str
    start: float
    end: float
    probability: float
    utterance: int

    def __post_init__(self):
        if not self.end >= self.start:
            raise ValueError(f"word {self.word!r} ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True)
class Segment:
    """A labelled span of a video. ``end=None`` means until the end of the video."""

    video_id: str
    segment_id: str
    start: float = 0.0
    end: float | None = None
    split: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VideoSource:
    """One input media file of a corpus and the segments to cut from it."""

    video_id: str
    path: str
    segments: tuple[Segment, ...] = ()
