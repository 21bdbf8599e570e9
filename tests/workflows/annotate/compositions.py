"""Two-speaker videos built from different real CREMA-D clips: two talking faces side by side or stacked, both
mouths moving, with the audio of one of them; written with PyAV (:func:`tests.workflows.joined_video.write_mp4`)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.workflows.joined_video import write_mp4

FPS, SR = 30, 16000
LEAD, TAIL = 0.5, 0.5  # seconds of the first frame before and the last frame after the clips (silent audio)


@dataclass(frozen=True)
class Composition:
    """One composed video: ``first`` on the left (or top), ``second`` on the right (or bottom); ``voice`` (0 or 1)
    is the face whose clip the audio is."""

    path: Path
    first: str
    second: str
    layout: str  # "side" (side by side) or "stacked"
    voice: int

    @property
    def video_id(self) -> str:
        return self.path.stem

    def speaker_centre(self) -> tuple[float, float]:
        """(x, y) of the speaking face's half of the frame, fractions of the frame."""
        half = 0.25 + 0.5 * self.voice
        return (half, 0.5) if self.layout == "side" else (0.5, half)


def _padded(media, n: int, lead: float) -> tuple[np.ndarray, np.ndarray]:
    """(frames (n, H, W, 3), audio (n / FPS s)) of a clip: ``lead`` s of its first frame, the clip, its last frame
    held; the audio silent outside the clip."""
    frames = media.frames[:, : media.frames.shape[1] // 2 * 2, : media.frames.shape[2] // 2 * 2]
    lead = int(round(lead * FPS))
    index = np.clip(np.arange(n) - lead, 0, len(frames) - 1)
    audio = np.zeros(round(n / FPS * SR), np.float32)
    clip = media.audio[: round(len(frames) / FPS * SR)]
    at = round(lead / FPS * SR)
    audio[at: at + len(clip)] = clip[: len(audio) - at]
    return frames[index], audio


def compose(folder: Path, clips: dict[str, Path], *, count: int = 24, offset: float = 0.6) -> list[Composition]:
    """``count`` compositions of distinct clip pairs, alternating layouts and voices, written into ``folder``.

    The silent face's clip starts ``offset`` seconds after the voiced one (before it, in every other composition),
    so both mouths move, not in unison (every clip says the same sentence: at offset 0 the two faces mouth it
    together, as no two people in a conversation do)."""
    from extractors.media import decode

    media = {name: decode(path, fps=FPS, max_side=320) for name, path in sorted(clips.items())}
    pairs = list(itertools.permutations(sorted(media), 2))  # (first, second): 30 ordered pairs of different clips
    out = []
    for k, (first, second) in enumerate(pairs[:count]):
        layout, voice = ("side", "stacked")[k % 2], (k // 2) % 2
        shift = offset if (k // 4) % 2 == 0 else -offset
        leads = [LEAD + max(0.0, -shift), LEAD + max(0.0, -shift)]
        leads[1 - voice] += shift  # the silent face's clip, ``shift`` s after the voiced one
        n = int(round((max(leads) + TAIL) * FPS)) + max(len(media[first].frames), len(media[second].frames))
        (f1, a1), (f2, a2) = _padded(media[first], n, leads[0]), _padded(media[second], n, leads[1])
        frames = np.concatenate([f1, f2], axis=2 if layout == "side" else 1)
        path = folder / f"{first}_{second}_{layout}_{voice}.mp4"
        write_mp4(path, list(frames), (a1, a2)[voice], fps=FPS, sample_rate=SR)
        out.append(Composition(path, first, second, layout, voice))
    return out
