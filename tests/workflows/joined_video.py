"""A long video made by joining real clips with pauses between them, written with PyAV (and the writer itself)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from extractors.media import decode


def join_clips(clips: list[Path], out: Path, *, seconds: float = 60.0, gap: float = 1.5, fps: int = 15,
               spans: list[tuple[float, float]] | None = None) -> float:
    """Repeat ``clips`` in turn, ``gap`` seconds of silence and black frames apart, until ``seconds``; -> duration.

    ``spans``: a list that receives each clip's (start, end) seconds in the joined video's audio."""
    sr = 16000
    decoded = [decode(p, fps=fps, max_side=320) for p in clips]
    h, w = decoded[0].frames.shape[1:3]
    h, w = h - h % 2, w - w % 2
    audio, frames = [], []
    t, k = 0.0, 0
    while t < seconds:
        m = decoded[k % len(decoded)]
        n_frames = int(round(m.duration * fps))
        if spans is not None:  # where the clip's audio lies (the frames of a gap can be a fraction of a frame short)
            at = sum(a.size for a in audio) / sr
            spans.append((at, at + n_frames / fps))
        clip_frames = [m.frames[min(i, len(m.frames) - 1), :h, :w] for i in range(n_frames)]
        audio += [m.audio[: int(round(n_frames / fps * sr))], np.zeros(int(gap * sr), np.float32)]
        frames += clip_frames + [np.zeros((h, w, 3), np.uint8)] * int(gap * fps)
        t += n_frames / fps + gap
        k += 1
    write_mp4(out, frames, np.concatenate(audio), fps=fps, sample_rate=sr)
    return len(frames) / fps


def write_mp4(path: Path, frames, wave: np.ndarray, *, fps: int, sample_rate: int = 16000) -> Path:
    """An MPEG-4 video of ``frames`` ((H, W, 3) uint8 RGB each, even sizes) with mono AAC ``wave`` (float32)."""
    wave = np.asarray(wave, np.float32)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate)
        sound.layout = "mono"
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(video.encode())
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode())
    return path
