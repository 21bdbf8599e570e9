"""Time chunks of long videos: where to cut (in silences), and how a chunk's rows are kept apart until the merge.

A video longer than ``ChunkConfig.single_max`` seconds is cut into chunks of about ``ChunkConfig.seconds`` that
run as separate Dask tasks on every worker. The cuts come from one streaming pass over the audio
(:func:`extractors.media.audio_envelope`, 10-ms RMS levels, never the samples): near each equal share of the
video (as many chunks as ``seconds`` fit, rounded), the middle of the longest quiet stretch (at least
``min_silence`` s below the level threshold) closest to the target, so that no word is split; without one, the
quietest 200 ms. Cuts are snapped to the visual sampling grid (``k / fps``), so that the frames of consecutive
chunks partition those of the whole video.

Whisper's context across a cut: the language extractor decodes every window without the previous text as a prompt
(openai-whisper's ``condition_on_previous_text=False``), with or without chunks, so a cut in a silence changes
nothing but where a window starts.

A chunk's streams are written as hidden staging files (``STORE/_chunks/video_id=<id>/<modality>/chunk-<k>.parquet``,
under a folder every reader skips) with their own metadata (config hash, source hash, rows, chunk bounds); a
rerun reuses the chunks that are current, and the merge task writes the one ``part.parquet`` of each stream
(:mod:`workflows.extract.merge`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.files import sha256_text


@dataclass(frozen=True)
class ChunkConfig:
    """How long videos are cut. Part of the config hash of the audio streams (language, acoustic): changing it
    recomputes them; the visual stream does not depend on cuts (frames are analysed one by one)."""

    seconds: float = 30.0
    """Target chunk length; a video of at most ``single_max`` (1.5 x this) seconds is one task."""
    min_silence: float = 0.3
    """Shortest quiet stretch a cut is placed in."""
    silence_db: float = 30.0
    """A 10-ms frame is quiet when its level is this many dB below the loud frames (95th percentile) ..."""
    floor_db: float = 10.0
    """... or at most this many dB above the noise floor (5th percentile), whichever threshold is higher (but at
    least 20 dB below the loud frames)."""
    margin: float = 0.5
    """Audio decoded on both sides of a chunk for the frame-based audio stream (acoustic), whose rows outside the
    chunk are dropped: its analysis windows at the cut see the real neighbouring audio."""

    def __post_init__(self):
        if not self.seconds > 0:
            raise ValueError(f"chunk seconds must be positive, got {self.seconds}")
        if self.min_silence < 0 or self.margin < 0:
            raise ValueError("chunk min_silence and margin must be >= 0")

    @property
    def single_max(self) -> float:
        return 1.5 * self.seconds

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def stream_hash(extractor_hash: str, chunking: ChunkConfig | None) -> str:
    """The config hash recorded in an audio stream's files: the extractor's, combined with the chunking."""
    if chunking is None:
        return extractor_hash
    return sha256_text(json.dumps({"extractor": extractor_hash, "chunking": asdict(chunking)}, sort_keys=True))[:16]


@dataclass(frozen=True)
class Chunk:
    """One chunk of a video: ``[start, end)`` seconds, ``end=None`` for the last one (to the end)."""

    index: int
    start: float
    end: float | None

    def label(self) -> str:
        return json.dumps({"index": self.index, "start": self.start, "end": self.end})


def quiet_frames(rms: np.ndarray, config: ChunkConfig) -> np.ndarray:
    """(N,) bool: frames below the silence threshold (see :class:`ChunkConfig`)."""
    if rms.size == 0:
        return np.zeros(0, bool)
    db = 20 * np.log10(np.maximum(rms, 1e-5))
    floor, loud = np.percentile(db, [5, 95])
    # at least 20 dB below the loud frames: with few pauses the 5th percentile is speech
    return db <= min(max(loud - config.silence_db, floor + config.floor_db), loud - 20.0)


def plan_chunks(rms: np.ndarray, hop: float, duration: float, config: ChunkConfig,
                grid: float | None = None) -> list[Chunk]:
    """Chunks covering ``[0, duration)`` from the audio levels ``rms`` (one per ``hop`` s; empty without audio).

    ``duration / config.seconds`` chunks (rounded), cut near equal shares of what is left: the last chunk is no
    longer than the others, so a video's chunks keep every worker busy to the end (the remainder used to go to the
    last chunk: 37.4 s after five of ~29 s for a 3-minute video). ``grid``: cuts are multiples of it (the visual
    sampling interval ``1 / fps``; default 10 ms).
    """
    grid = grid or 0.01
    if duration <= config.single_max:
        return [Chunk(0, 0.0, None)]
    quiet = quiet_frames(rms, config)
    smooth = np.convolve(rms.astype(np.float64) ** 2, np.ones(20) / 20, mode="same") if rms.size else rms
    runs = _runs(quiet)
    cuts: list[float] = []
    position = 0.0
    count = max(2, round(duration / config.seconds))  # chunks of about equal length: none left over at the end
    for left in range(count, 1, -1):
        step = (duration - position) / left
        target = position + step
        lo, hi = position + 0.5 * step, min(position + 1.5 * step, duration - 0.5 * step)
        cut = _cut_near(runs, smooth, hop, target, lo, hi, config.min_silence)
        cut = round(round(cut / grid) * grid, 6)
        if not position < cut < duration:  # a grid coarser than the chunk: go on by the target
            cut = round(math.ceil(target / grid) * grid, 6)
        if not position < cut < duration:
            break
        cuts.append(cut)
        position = cut
    bounds = [0.0, *cuts]
    return [Chunk(i, b, bounds[i + 1] if i + 1 < len(bounds) else None) for i, b in enumerate(bounds)]


def _runs(mask: np.ndarray) -> np.ndarray:
    """(R, 2) [start, stop) frame indices of the True runs of ``mask``."""
    if mask.size == 0:
        return np.zeros((0, 2), np.int64)
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def _cut_near(runs: np.ndarray, smooth: np.ndarray, hop: float, target: float, lo: float, hi: float,
              min_silence: float) -> float:
    """The middle of the quiet run in ``[lo, hi]`` nearest ``target`` (long enough ones first), else the quietest
    point there, else the target itself (no audio)."""
    if len(runs):
        starts, stops = runs[:, 0] * hop, runs[:, 1] * hop
        a, b = np.maximum(starts, lo), np.minimum(stops, hi)  # the part of each run inside the window
        inside = b > a
        for need in (min_silence, 0.0):
            ok = inside & (b - a >= max(need, 1e-9))
            if ok.any():
                middles = (a[ok] + b[ok]) / 2
                return float(middles[np.argmin(np.abs(middles - target))])
    i, j = int(lo / hop), int(hi / hop)
    if smooth.size and j > i and i < smooth.size:
        return (i + int(np.argmin(smooth[i:min(j, smooth.size)]))) * hop
    return target
