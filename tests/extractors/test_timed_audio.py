"""Audio placed by its timestamps (issue 18 item 3): a recording joined from clips with ffmpeg's concat demuxer, whose
AAC frames overlap at every join, keeps its words where its video is, over 3 minutes; a gap becomes silence."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import correlate

from extractors.media import audio_envelope, decode
from tests.extractors.media_files import cremad_clips

SR = 16000


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """(joined file, [(clip, start of its first video frame in the joined file)]): the six CREMA-D clips, each
    re-encoded to MPEG-4 with 48 kHz AAC, concatenated by the concat demuxer without re-encoding until 3 minutes."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    folder = tmp_path_factory.mktemp("joined")
    clips = []
    for name, source in sorted(cremad_clips().items()):
        clip = folder / f"{name}.mp4"
        _ffmpeg("-i", str(source), "-vf", "scale=160:-2", "-c:v", "mpeg4", "-c:a", "aac", "-ar", "48000", "-ac", "1",
                str(clip))
        clips.append(clip)
    lengths = {c: av.open(str(c)).duration / av.time_base for c in clips}
    entries = []
    while sum(lengths[c] for c in entries) < 180:
        entries += clips
    listing = folder / "list.txt"
    listing.write_text("".join(f"file '{c.name}'\n" for c in entries))
    out = folder / "joined.mp4"
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out))
    counts = {c: _video_times(c).size for c in clips}
    times, at, starts = _video_times(out), 0, []
    for clip in entries:
        starts.append((clip, float(times[at])))
        at += counts[clip]
    return out, starts


def _video_times(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return np.sort([float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None])


def _lag(audio: np.ndarray, clip_audio: np.ndarray, at: float, search: float = 4.0) -> float:
    """Seconds by which ``clip_audio`` lies later in ``audio`` than ``at`` (cross-correlation within +-search)."""
    lo = max(int((at - search) * SR), 0)
    window = audio[lo: int((at + search) * SR) + clip_audio.size]
    score = correlate(window, clip_audio, mode="valid", method="fft")
    return (lo + int(np.argmax(score))) / SR - at


def test_the_joined_file_really_overlaps(joined):
    path, starts = joined
    overlap, end = 0.0, None
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            if end is not None and frame.time < end - 1e-3:
                overlap += end - frame.time
            end = frame.time + frame.samples / frame.sample_rate
    assert overlap > 0.02 * (len(starts) - 1)  # about 30 ms of AAC per join, counted samples would run ahead by that


def test_words_stay_with_the_video_over_three_minutes(joined):
    path, starts = joined
    media = decode(path, video=False)
    video_end = float(_video_times(path)[-1])
    assert video_end > 175
    assert abs(media.audio.size / SR - video_end) < 0.1  # today: 2.6 s longer than its video
    alone = {clip: decode(clip, video=False).audio for clip in {c for c, _ in starts}}
    lags = [_lag(media.audio, alone[clip], at) for clip, at in starts[:: max(len(starts) // 12, 1)] + starts[-2:]]
    assert max(map(abs, lags)) <= 0.1, lags  # today: 2.3 s at 155 s

    late = starts[-3][1]  # a window far in the file, reached by seeking, is on the same timeline
    window = decode(path, video=False, start=late - 5, end=late + 5)
    piece = media.audio[int((late - 2) * SR): int((late + 2) * SR)]
    assert abs(_lag(window.audio, piece, 3.0, search=1.0)) <= 0.02
    assert abs(audio_envelope(path).duration - video_end) < 0.1  # chunk planning measures the same timeline


@pytest.mark.filterwarnings("ignore::extractors.media.MissingStreamWarning")
def test_a_gap_in_the_timestamps_becomes_silence(tmp_path):
    """Two seconds of tone with 1.5 s missing between them (a damaged recording): the second second starts 1.5 s
    later, not right after the first."""
    path, rate = tmp_path / "gap.mkv", SR
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        for offset in (0, int(2.5 * rate)):
            for start in range(0, rate, 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts = rate, offset + start
                for packet in stream.encode(frame):
                    container.mux(packet)
    audio = decode(path, video=False).audio
    assert abs(audio.size / rate - 3.5) < 0.05
    level = np.sqrt(np.mean(audio.reshape(-1, rate // 10)[:, :] ** 2, axis=1))  # RMS per 0.1 s
    assert (level[:10] > 0.1).all() and (level[11:24] < 0.01).all() and (level[26:] > 0.1).all()


def test_a_timestamp_past_the_plausible_end_is_not_followed():
    """A flipped bit that throws one frame's time days ahead is no pause: nothing is filled, the samples count on."""
    from fractions import Fraction

    from extractors.timed_audio import TimedAudio

    timed = TimedAudio(SR, limit=10.0)
    timed.cursor, pieces = 0, []
    for k in range(20):
        frame = av.AudioFrame.from_ndarray(np.full((1, 1024), 0.1, np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.time_base = SR, Fraction(1, SR)
        frame.pts = k * 1024 + (2 ** 40 if k == 10 else 0)
        pieces += list(timed.push(frame))
    pieces += list(timed.push(None))
    assert sum(p.size for _, p in pieces) == 20 * 1024 and timed.cursor == 20 * 1024
