"""The eGeMAPS acoustic stream (openSMILE): openSMILE's own output on real clips, named columns, short and
missing audio."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import extractors
from extractors.base import Media
from extractors.egemaps import FEATURE_NAMES
from extractors.media import decode
from tests.extractors.media_files import cremad_clips, write_media

opensmile = pytest.importorskip("opensmile")


def _features(table: pa.Table) -> np.ndarray:
    return np.asarray(table["features"].combine_chunks().values).reshape(len(table), -1)  # (N, 25)


def _audio(audio: np.ndarray, start: float = 0.0) -> Media:
    return Media("synthetic.wav", audio.size / 16000, audio.astype(np.float32), 16000,
                 np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0), start=start)


@pytest.fixture(scope="module")
def egemaps():
    return extractors.create("egemaps")


@pytest.fixture(scope="module")
def smile():
    """openSMILE's eGeMAPS v02 LLDs, straight from the package."""
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.LowLevelDescriptors)


def test_registered_with_its_schema(egemaps, smile):
    assert "egemaps" in extractors.available("acoustic")
    schema = egemaps.schema()
    assert schema.names == ["time", "features"] and schema.field("features").type == pa.list_(pa.float32(), 25)
    assert json.loads(schema.metadata[b"feature_names"]) == FEATURE_NAMES
    assert json.loads(schema.metadata[b"frame_shift"]) == 0.01
    assert json.loads(schema.metadata[b"models"])["opensmile"] == opensmile.__version__
    assert list(smile.feature_names) == FEATURE_NAMES


def test_cremad_clips_are_opensmiles_descriptors(egemaps, smile):
    """Each clip: openSMILE's eGeMAPS LLDs of its audio, one row per 10 ms, finite, F0 where the voice is."""
    voiced = {}
    for emotion, path in cremad_clips().items():
        media = decode(path, fps=1)
        table = egemaps.extract(media)
        expected = smile.process_signal(media.audio, 16000)
        np.testing.assert_array_equal(_features(table), expected.to_numpy(np.float32))
        times = np.asarray(table["time"])
        np.testing.assert_allclose(times, 0.01 + 0.01 * np.arange(len(table)), atol=1e-9)
        assert abs(len(table) - len(media.audio) // 160) <= 5, (emotion, len(table))
        voiced[emotion] = np.mean(_features(table)[:, FEATURE_NAMES.index("F0semitoneFrom27.5Hz_sma3nz")] > 0)
    # voiced and unvoiced frames in the loud takes (openSMILE finds almost no F0 in the soft DIS and SAD mp3s)
    assert all(0.1 < voiced[e] < 0.9 for e in ("ANG", "FEA", "HAP")), voiced


def test_times_follow_the_media_start_and_short_audio_is_padded(egemaps):
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)
    later = egemaps.extract(_audio(tone, start=12.5))
    assert np.asarray(later["time"])[0] == pytest.approx(12.51)
    short = egemaps.extract(_audio(tone[:480]))  # 30 ms: openSMILE alone gives a row of NaN
    assert len(short) >= 1 and np.isfinite(_features(short)).all()
    assert np.asarray(short["time"]).max() < 0.03 + 0.01 + 1e-9


def test_no_audio_gives_an_empty_table(egemaps, tmp_path):
    media = decode(str(write_media(tmp_path / "mute.mp4", audio=False)), fps=5)
    table = egemaps.extract(media)
    assert table.num_rows == 0 and table.schema == egemaps.schema()
