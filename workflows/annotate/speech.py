"""Where the speech is, for the rows of `mcr predict`: a voice activity detector on the video's audio, decoded once
per prediction (audio only: the frames are not decoded again), with the acoustic stream's voicing as the fallback.

The detector is Silero VAD (the ``silero-vad`` wheel: its weights ship inside it, it runs offline on torch, which the
model needs anyway). It was chosen by measurement, on the 6 CREMA-D clips joined with 1-s gaps (18.9 s; clips found /
regions / seconds of speech outside the clips), against an energy + voicing detector on the acoustic stream
(:func:`voiced_speech`) and WebRTC's (webrtcvad-wheels, mode 3):

=====================  ==============  ====================  ==========  ===========================
audio                  silero-vad      acoustic voicing      webrtc 3    whisper's words alone
=====================  ==============  ====================  ==========  ===========================
clean                  6/6, 6, 0 s     6/6, 7, 0.8 s         6/6, 6, 0   5/6 (one clip has no word)
+ white noise 20 dB    6/6, 6, 0 s     6/6, 6, 0 s           6/6, 7, 0
+ white noise 10 dB    6/6, 6, 0 s     5/6                   6/6, 6, 0
+ white noise 5 dB     6/6, 6, 0 s     4/6                   6/6, 7, 0
+ chord at -10 dB      6/6, 6, 0 s     5/6                   6/6, 7, 0
chord alone (no voice) 0 s             19 s (all of it)      0.09 s
=====================  ==============  ====================  ==========  ===========================

Silero alone found every clip in every condition, merged none and called no music or noise speech; it costs
~0.5 s per 19 s of audio on one CPU thread (~40x real time). When the ``silero-vad`` package is missing, the acoustic
stream's voicing is used instead (and the table's metadata says so).

The same decoded audio gives the voice's loudness envelope (:attr:`Heard.level_db`, 10-ms RMS in dB), against which
:mod:`.faces` matches each face's mouth. (Whisper's own energy gate, which only decides what whisper hears, is
``extractors/vad.py``: the extractors cannot import this package.)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore
from pipeline.views import acoustic_series
from workflows.annotate.segments import Interval, merge_intervals

VAD_SILERO, VAD_VOICING = "silero-vad", "acoustic voicing"
ENVELOPE_HOP = 0.01
"""Seconds per value of the loudness envelope."""


@dataclass(frozen=True)
class Heard:
    """What one video's audio says: its speech (start, end) seconds and its loudness (times (A,), level_db (A,),
    empty when the audio could not be read)."""

    speech: list[Interval]
    times: np.ndarray
    level_db: np.ndarray


@functools.lru_cache(maxsize=1)
def _silero_model():
    import warnings

    from silero_vad import load_silero_vad

    with warnings.catch_warnings():  # torch 2.10+: "torch.jit.load is deprecated", about silero's own loader
        warnings.simplefilter("ignore", FutureWarning)
        return load_silero_vad()  # the TorchScript model inside the wheel: nothing is downloaded


def vad_name() -> str:
    """The voice activity detector this installation uses."""
    try:
        import silero_vad  # noqa: F401
    except ImportError:
        return VAD_VOICING
    return VAD_SILERO


def silero_speech(audio: np.ndarray, sample_rate: int = 16000) -> list[Interval]:
    """Speech (start, end) seconds in ``audio`` (mono float, 16 kHz) by Silero VAD, its default settings
    (threshold 0.5, speech >= 250 ms, pauses >= 100 ms, 30 ms padding)."""
    import torch
    from silero_vad import get_speech_timestamps

    if len(audio) < 512:
        return []
    with torch.no_grad():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio, np.float32)), _silero_model(),
                                       sampling_rate=sample_rate)
    return [(d["start"] / sample_rate, d["end"] / sample_rate) for d in stamps]


def voiced_speech(times: np.ndarray, voiced: np.ndarray, *, hop: float = 0.01, min_pause: float = 0.3,
                  min_voiced: float = 0.1, pad: float = 0.1) -> list[Interval]:
    """Speech from per-frame voicing (the acoustic stream's ``voiced``): runs of voiced frames with pauses under
    ``min_pause`` bridged, kept when they hold ``min_voiced`` seconds of voicing, padded by ``pad``.

    The fallback detector when silero-vad is not installed; measured weaker in noise (the table above)."""
    times, voiced = np.asarray(times, np.float64), np.asarray(voiced, bool)
    if not len(times) or not voiced.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    runs = [(times[a], times[b - 1] + hop) for a, b in zip(edges[::2], edges[1::2])]
    kept = []
    for s, e in merge_intervals(runs, min_pause):
        inside = voiced[(times >= s) & (times < e)]
        if inside.sum() * hop >= min_voiced:
            kept.append((max(0.0, s - pad), e + pad))
    return merge_intervals(kept)


def loudness(audio: np.ndarray, sample_rate: int, start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(times (A,) the centre of each :data:`ENVELOPE_HOP` block, level (A,) its RMS in dB, floored at -100)."""
    hop = max(1, int(round(ENVELOPE_HOP * sample_rate)))
    n = len(audio) // hop
    blocks = np.asarray(audio[: n * hop], np.float64).reshape(n, hop)
    level = 10 * np.log10(np.maximum(np.mean(blocks * blocks, axis=1), 1e-10))
    return start + (np.arange(n) + 0.5) * hop / sample_rate, level


def listen(store: FeatureStore, source: VideoSource, vad: str | None = None) -> Heard:
    """Speech and loudness of ``source``: its audio decoded once (no frames), Silero VAD on it; the stored acoustic
    stream's voicing and level when Silero is not installed or the audio cannot be read again."""
    from extractors.media import decode
    from pipeline.errors import StageError

    try:
        media = decode(source.path, video=False, warn=False)  # the extraction reported a missing track
    except (StageError, OSError):
        media = None
    if media is not None and len(media.audio):
        times, level = loudness(media.audio, media.sample_rate, media.start)
        if (vad or vad_name()) == VAD_SILERO:
            speech = [(media.start + s, media.start + e) for s, e in silero_speech(media.audio, media.sample_rate)]
            return Heard(speech, times, level)
        return Heard(_voicing(store, source.video_id), times, level)
    times, level, _ = acoustic_series(store, source.video_id, "rms_db", "mfcc_00")
    return Heard(_voicing(store, source.video_id), times, level)


def _voicing(store: FeatureStore, video_id: str) -> list[Interval]:
    times, voiced, hop = acoustic_series(store, video_id, "voiced")
    return voiced_speech(times, voiced > 0.5, hop=hop)
