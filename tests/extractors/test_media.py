"""extractors.media.decode on real media: CREMA-D's FLV layout, sampling, and every bad input a user can hand it."""
from __future__ import annotations

import av
import numpy as np
import pytest

from extractors.media import DEFAULT_FPS, MissingStreamWarning, decode
from pipeline.errors import MediaError, MediaNotFoundError
from tests.extractors.media_files import cremad_clips, pyfeat_sample, write_media


@pytest.fixture(scope="module")
def hap_clip():
    return cremad_clips()["HAP"]


@pytest.fixture(scope="module")
def hap(hap_clip):
    return decode(hap_clip)


def test_cremad_flv_streams_chosen_by_type(hap, hap_clip):
    with av.open(str(hap_clip)) as container:
        assert container.streams[0].type == "data", "the clip should put a data stream first"
        declared = container.duration / av.time_base
    assert hap.sample_rate == 16000 and hap.audio.dtype == np.float32 and hap.audio.ndim == 1
    assert abs(hap.duration - declared) < 0.1, (hap.duration, declared)
    assert hap.audio.size == pytest.approx(hap.duration * 16000, abs=2)
    assert 0.05 < np.abs(hap.audio).max() <= 1.0, "speech should be audible and in [-1, 1]"
    assert hap.frames.shape[1:] == (360, 480, 3) and hap.frames.dtype == np.uint8
    assert hap.native_fps == pytest.approx(29.97, abs=0.01)
    assert hap.frames.mean() > 20, "frames should be decoded pictures, not black"
    assert hap.warnings == []


def test_frames_sampled_at_fps_with_pts_timestamps(hap, hap_clip):
    every = decode(hap_clip, fps=None)
    assert len(every.frame_times) == pytest.approx(every.duration * 29.97, abs=2)
    assert np.all(np.diff(every.frame_times) > 0)
    assert len(hap.frame_times) == pytest.approx(hap.duration * DEFAULT_FPS, abs=1.5)
    assert set(hap.frame_times) <= set(every.frame_times), "sampled frames keep their own timestamps"
    slack = 0.5 / hap.native_fps
    for k, t in enumerate(hap.frame_times):  # the first frame at or after each instant k / fps
        candidates = every.frame_times[every.frame_times >= k / DEFAULT_FPS - slack]
        assert t == candidates[0], (k, t, candidates[:2])
    i = int(np.flatnonzero(every.frame_times == hap.frame_times[3])[0])
    np.testing.assert_array_equal(hap.frames[3], every.frames[i])


def test_max_side_downscales_keeping_aspect():
    media = decode(pyfeat_sample("single_face.mp4"), max_side=320)  # 640x360
    assert media.frames.shape[1:] == (180, 320, 3)


def test_late_audio_is_placed_on_the_timeline():
    """face_noface.mov's audio starts 2.43 s into the video: sample i must still be time i / 16000."""
    media = decode(pyfeat_sample("face_noface.mov"), fps=1)
    assert media.audio.size == pytest.approx(media.duration * 16000, abs=2)
    assert np.abs(media.audio[: int(2.3 * 16000)]).max() == 0.0
    assert np.abs(media.audio[int(2.6 * 16000):]).max() > 0.0


@pytest.fixture(scope="module")
def encoded_mp4(tmp_path_factory):
    """A faststart mp4 (index first, so a truncated copy still opens) with video and audio."""
    return write_media(tmp_path_factory.mktemp("media") / "ok.mp4", options={"movflags": "faststart"})


def _truncate(source, target, share=0.3):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * share)])
    return target


@pytest.mark.parametrize("make", ["text", "truncated_faststart", "truncated_index_last", "truncated_flv", "empty"])
def test_bad_inputs_are_clear_media_errors(make, tmp_path, encoded_mp4):
    path = tmp_path / ("bad.flv" if make == "truncated_flv" else "bad.mp4")
    if make == "text":
        path.write_text("this is a text file, not a video\n" * 20)
    elif make == "truncated_faststart":
        _truncate(encoded_mp4, path)
    elif make == "truncated_index_last":
        _truncate(pyfeat_sample("single_face.mp4"), path)
    elif make == "truncated_flv":
        _truncate(cremad_clips()["ANG"], path)
    else:
        path.write_bytes(b"")
    with pytest.raises(MediaError) as info:
        decode(path)
    error = info.value
    assert error.stage == "decode" and error.path == str(path)
    assert str(path) in str(error) and "[decode]" in str(error)
    assert not isinstance(error, av.FFmpegError) and (error.__context__ is None or error.__suppress_context__)
    expected = {"empty": "0 bytes", "truncated_flv": "truncated", "truncated_faststart": "truncated"}
    assert expected.get(make, "") in str(error)


def test_missing_path(tmp_path):
    path = tmp_path / "nowhere.mp4"
    with pytest.raises(MediaNotFoundError) as info:
        decode(path)
    assert isinstance(info.value, FileNotFoundError) and info.value.stage == "decode"
    assert str(path) in str(info.value)


def test_video_without_audio_warns_and_has_empty_audio(tmp_path):
    path = write_media(tmp_path / "silent.mp4", audio=False)
    with pytest.warns(MissingStreamWarning, match="no audio track"):
        media = decode(path)
    assert media.audio.size == 0 and not media.has_audio
    assert media.has_video and len(media.frame_times) == pytest.approx(2.0 * DEFAULT_FPS, abs=1)
    assert any("no audio" in w for w in media.warnings)


def test_audio_without_video_warns_and_has_no_frames(tmp_path):
    path = write_media(tmp_path / "audio.m4a", video=False)
    with pytest.warns(MissingStreamWarning, match="no video track"):
        media = decode(path)
    assert not media.has_video and media.frames.shape[0] == 0
    assert media.has_audio and media.duration == pytest.approx(2.0, abs=0.1)
    spectrum = np.abs(np.fft.rfft(media.audio))
    assert np.fft.rfftfreq(media.audio.size, 1 / 16000)[spectrum.argmax()] == pytest.approx(220, abs=2)


@pytest.mark.parametrize("options", [{"fps": 0}, {"fps": -5}, {"max_side": 8}])
def test_bad_decode_options_are_value_errors(tmp_path, options):
    with pytest.raises(ValueError, match="fps|max_side"):
        decode(tmp_path / "whatever.mp4", **options)
