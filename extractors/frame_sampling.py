"""Which video frames a stream keeps at a given rate: one rule for the decoder and the visual extractors.

A frame is kept for the next instant ``k / fps`` (seconds of the video) when it is at most half a native frame
before it (a frame counts for the instant it is closest to); after a kept frame at ``t`` the next instant is the
first one more than half a native frame after ``t``. The rule is kept in whole instants, never accumulated
sums of ``1 / fps``, so that sampling frames already sampled keeps every one of them: the decoder samples a chunk's
frames and hands them to the extractor in batches, and the extractor samples each batch again without dropping
any (it used to, with a slack guessed from the batch's median interval: a 15-fps video sampled at 10 fps lost half
its frames over whole batches).
"""
from __future__ import annotations

import math

import numpy as np


class FrameSampler:
    """Frame-by-frame decisions, in presentation order: ``keep(t)``."""

    def __init__(self, fps: float, native_fps: float | None, *, start: float = 0.0):
        assert fps > 0, f"fps {fps}"
        self.fps = fps
        self.slack = 0.5 / native_fps if native_fps else 0.0
        self.instant = math.ceil(start * fps - 1e-9)  # k of the next instant k / fps

    @property
    def next_instant(self) -> float:
        """Seconds of the next instant a frame is wanted for."""
        return self.instant / self.fps

    def keep(self, t: float) -> bool:
        """Whether the frame at ``t`` seconds is kept (the instants it covers are then used up)."""
        if t < self.instant / self.fps - self.slack:
            return False
        self.instant = max(self.instant, math.floor((t + self.slack) * self.fps + 1e-9) + 1)
        return True


def sample_frames(times: np.ndarray, fps: float | None, native_fps: float | None = None) -> np.ndarray:
    """Indices of the frames at ``times`` (seconds, increasing) that :class:`FrameSampler` keeps; all of them
    when ``fps`` is None. ``native_fps``: the video's frame rate (the slack); None: no slack."""
    if fps is None:
        return np.arange(len(times))
    sampler = FrameSampler(fps, native_fps)
    return np.asarray([i for i, t in enumerate(times) if sampler.keep(float(t))], dtype=np.int64)
