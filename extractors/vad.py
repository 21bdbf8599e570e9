"""Where the speech is: an energy voice-activity detector, so that silence never reaches whisper's decoder.

A 20-ms frame is silent when its level is at most ``floor_db`` above the audio's noise floor (5th percentile) or
``range_db`` below its loud frames (95th percentile), whichever threshold is higher, but always at least
``min_range_db`` below the loud frames: in audio with few pauses the 5th percentile is speech, and audio all at
one level (or noisy, with a poor signal-to-noise ratio) is one region. Silent stretches of at least
``min_silence`` seconds split the audio into regions, each padded by ``pad`` seconds of its surroundings. The
thresholds are loose on purpose: a region with noise but no speech costs one whisper window that yields no word,
while a word left out is lost.
"""
from __future__ import annotations

import numpy as np

FRAME_SECONDS = 0.02


def speech_regions(audio: np.ndarray, sample_rate: int, *, min_silence: float = 0.5, pad: float = 0.2,
                   floor_db: float = 6.0, range_db: float = 40.0, min_range_db: float = 25.0,
                   silence_peak: float = 1e-3, origin: int = 0) -> list[tuple[int, int]]:
    """``[(first_sample, stop_sample), ...]`` of the speech regions of ``audio``, in order, not overlapping.

    Audio whose peak is below ``silence_peak`` has no region; audio without silences of ``min_silence`` is one
    region. ``origin``: the index of ``audio[0]`` in the whole recording; frames start at multiples of 20 ms of
    the recording, so that a piece of it gets the frames (and, levels alike, the regions) the whole would.
    """
    n = audio.size
    if n == 0 or float(np.abs(audio).max()) < silence_peak:
        return []
    step = max(int(round(FRAME_SECONDS * sample_rate)), 1)
    skip = (-origin) % step  # samples before the first frame of the recording's grid
    frames = (n - skip) // step
    if frames < 4:
        return [(0, n)]
    blocks = audio[skip: skip + frames * step].reshape(frames, step).astype(np.float64)
    db = 10 * np.log10(np.maximum(np.mean(blocks * blocks, axis=1), 1e-12))  # (frames,)
    floor, loud = np.percentile(db, [5, 95])
    silent = db <= min(max(floor + floor_db, loud - range_db), loud - min_range_db)
    edges = np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long_enough = (stops - starts) * step >= min_silence * sample_rate
    gaps = [(skip + int(a) * step, skip + int(b) * step) for a, b, keep in zip(starts, stops, long_enough) if keep]
    if gaps and gaps[0][0] == skip:
        gaps[0] = (0, gaps[0][1])  # a leading partial frame joins a leading silence
    if gaps and gaps[-1][1] == skip + frames * step:
        gaps[-1] = (gaps[-1][0], n)  # a trailing partial frame joins a trailing silence
    regions, position = [], 0
    for a, b in gaps:
        if a > position:
            regions.append((position, a))
        position = b
    if position < n:
        regions.append((position, n))
    margin = int(round(pad * sample_rate))
    padded: list[tuple[int, int]] = []
    for a, b in regions:
        a, b = max(a - margin, 0), min(b + margin, n)
        if padded and a <= padded[-1][1]:
            padded[-1] = (padded[-1][0], b)
        else:
            padded.append((a, b))
    return padded
