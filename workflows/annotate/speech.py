"""Where the speech is, for the rows of `mcr predict`, and how loud the voice is: read from each video's ``voice``
stream (:mod:`extractors.voice`: Silero VAD and the 10-ms level, computed during extraction from the audio it had
decoded), so annotation never decodes a video. Why Silero: the measurements in :mod:`extractors.voice`.

The loudness envelope (:attr:`Heard.level_db`) is what :mod:`.faces` matches each face's mouth against, and what
:mod:`.rows` splits long speech at.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.store import FeatureStore
from pipeline.views import voice_series
from workflows.annotate.segments import Interval


@dataclass(frozen=True)
class Heard:
    """What one video's audio says: its speech (start, end) seconds, its loudness (times (A,), level_db (A,), one
    value every ``frame_shift`` seconds), the detector that found the speech; empty (detector None) without a voice
    stream or audio."""

    speech: list[Interval]
    times: np.ndarray
    level_db: np.ndarray
    frame_shift: float = 0.01
    detector: str | None = None


def speech_spans(times: np.ndarray, speech: np.ndarray, hop: float) -> list[Interval]:
    """Runs of speech frames -> (start, end) seconds: frame ``k`` spans ``times[k] -+ hop / 2``; times (A,) sorted,
    speech (A,) bool."""
    if not speech.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    return [(float(times[a] - hop / 2), float(times[b - 1] + hop / 2)) for a, b in zip(edges[::2], edges[1::2])]


def listen(store: FeatureStore, video_id: str) -> Heard:
    """Speech and loudness of ``video_id``, as its voice stream holds them."""
    voice = voice_series(store, video_id)
    return Heard(speech_spans(voice.times, voice.speech, voice.frame_shift), voice.times, voice.level_db,
                 voice.frame_shift, voice.detector)
