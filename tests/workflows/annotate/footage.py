"""Footage of real clips joined with pauses: the 6 CREMA-D clips cut to their speech, 16 of them in turn, each
followed by 0.55-1.0 s of near-silence (noise at about -52 dBFS, the last frame held), the sequence played
``repeats`` times; each clip written as a file of its own and the files joined with FFmpeg's concat demuxer
(``-c copy``), as recordings joined from clips are: every file's AAC priming makes its packets overlap the last
file's, so counting audio samples runs ahead of the timestamps (by ~0.064 s per join)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.workflows.joined_video import write_mp4

FPS, SR = 15, 16000
CLIPS_PER_REPEAT = 16
GAPS = (0.55, 0.7, 0.85, 1.0)
NOISE_DBFS = -52.0


def speech_bounds(audio: np.ndarray, *, below_peak_db: float = 30.0) -> tuple[float, float]:
    """First and last 20-ms frame of ``audio`` within ``below_peak_db`` of its loudest: the clip cut to its words."""
    hop = SR // 50
    rms = np.sqrt(np.mean(audio[: len(audio) // hop * hop].reshape(-1, hop) ** 2, axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -below_peak_db)
    return loud[0] * hop / SR, (loud[-1] + 1) * hop / SR


def joined_footage(path: Path, clips: dict[str, Path], *, repeats: int = 2) -> tuple[float, list[tuple[float, float]]]:
    """Writes the footage to ``path``; -> (duration s, each clip's (start, end) s in order, by the timestamps)."""
    from extractors.media import decode

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    names = sorted(clips)
    media = {n: decode(clips[n], fps=FPS, max_side=240) for n in names}
    rng = np.random.default_rng(0)
    noise = 10 ** (NOISE_DBFS / 20) * np.sqrt(2)  # a sine-like peak for a -52 dBFS RMS
    pieces, spans, at = [], [], 0.0
    for k in range(repeats * CLIPS_PER_REPEAT):
        m = media[names[(k * 5 + k // len(names)) % len(names)]]
        a, b = (int(round(t * FPS)) for t in speech_bounds(m.audio))
        images = m.frames[a:b, : m.frames.shape[1] // 2 * 2, : m.frames.shape[2] // 2 * 2]
        wave = m.audio[round(a / FPS * SR): round(b / FPS * SR)]
        wave = np.pad(wave, (0, round(len(images) / FPS * SR) - len(wave)))
        spans.append((at, at + len(images) / FPS))
        gap = int(round(GAPS[k % len(GAPS)] * FPS))
        pause = rng.uniform(-noise, noise, round(gap / FPS * SR)).astype(np.float32)
        audio = np.concatenate([wave, pause])
        piece = path.parent / f".{path.stem}_{k:03d}.mp4"
        write_mp4(piece, list(images) + [images[-1]] * gap, audio, fps=FPS, sample_rate=SR)
        pieces.append(piece)
        at += (len(images) + gap) / FPS
    listing = path.parent / f".{path.stem}.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in pieces))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    str(path)], check=True)
    for p in (*pieces, listing):
        p.unlink()
    return at, spans
