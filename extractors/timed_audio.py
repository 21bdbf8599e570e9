"""Decoded audio frames -> mono samples at a fixed rate, placed on the timeline by their timestamps.

Counting samples is not enough: a recording joined from clips without re-encoding (ffmpeg's concat demuxer, most
editors' "join") repeats each clip's codec priming and padding, about 30 ms of AAC per join, and a damaged file
skips or repeats packets. Counted, such audio runs ahead of its video (1.3 s after 150 s of joined clips) and words
land after the speech, or after the file's end. :class:`TimedAudio` does what ffmpeg's ``aresample=async=1`` does:
where the samples stray from their frames' timestamps by more than ``tolerance``, a gap is filled with silence and
an overlap is dropped. A timestamp past ``limit`` (a flipped bit, not a pause) is not followed: the samples are
counted on, and memory never holds a gap of days.
"""
from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

SYNC_TOLERANCE = 0.02  # seconds: below any word's length, above timestamp rounding (ms-based containers: 1 ms)
_SILENCE_BLOCK = 1.0  # seconds of zeros yielded at a time, so that a long gap never allocates its length


class TimedAudio:
    """Resamples audio frames to mono float32 at ``sample_rate`` and yields them where their timestamps put them.

    ``cursor`` is the timeline index (seconds x ``sample_rate`` from ``origin``) of the next sample; set it before
    the first :meth:`push` (where the audio starts). :meth:`push` yields ``(index, samples)`` pieces, contiguous
    (``index`` is the cursor before the piece), silence included.
    """

    def __init__(self, sample_rate: int, origin: float = 0.0, *, tolerance: float = SYNC_TOLERANCE,
                 limit: float | None = None):
        self.sample_rate, self.origin = sample_rate, origin
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        self.cursor: int | None = None
        self.tolerance = int(round(tolerance * sample_rate))
        self.limit = None if limit is None else int(limit * sample_rate)  # the last plausible timeline index
        self._drop = 0  # samples of an overlap still to drop
        self._scale: float | None = None  # timeline samples per unit of the resampler's pts
        self._zeros = np.zeros(int(_SILENCE_BLOCK * sample_rate), np.float32)

    def push(self, frame: av.AudioFrame | None) -> Iterator[tuple[int, np.ndarray]]:
        """The pieces of ``frame`` (``None``: flush the resampler at the end), (S,) float32 each."""
        if self.cursor is None:
            raise RuntimeError("set TimedAudio.cursor (where the audio starts) before the first frame")
        for out in self.resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1)
            if out.pts is not None:  # the resampler carries the input's timestamps over, net of its own delay
                if self._scale is None:  # (pts, not frame.time: 0.07 us against 1.3 us a frame)
                    self._scale = float(out.time_base) * self.sample_rate
                expected = int(round(out.pts * self._scale - self.origin * self.sample_rate))
                if abs(expected - (self.cursor - self._drop)) > self.tolerance:
                    yield from self._place(expected)
            if self._drop:
                cut = min(self._drop, samples.size)
                samples, self._drop = samples[cut:], self._drop - cut
            if samples.size:
                yield self.cursor, samples
                self.cursor += samples.size

    def _place(self, expected: int) -> Iterator[tuple[int, np.ndarray]]:
        """Silence up to ``expected``, or an overlap to drop (the next samples strayed beyond the tolerance)."""
        if self.limit is not None and expected > self.limit:
            return
        self._drop = max(self.cursor - expected, 0)
        while self.cursor < expected:
            block = self._zeros[: expected - self.cursor]
            yield self.cursor, block
            self.cursor += block.size
