"""The librosa acoustic extractor: frame count, named columns, F0 / voicing on a known signal, CREMA-D clips."""
from __future__ import annotations

import json

import numpy as np
import pytest

from extractors import create
from extractors.acoustic import AcousticExtractor
from extractors.base import Media
from extractors.media import decode
from tests.extractors.media_files import cremad_clips, write_media

SR = 16000


def _features(table) -> np.ndarray:
    return np.asarray(table["features"].combine_chunks().values).reshape(len(table), -1)  # (N, D)


def _audio_media(audio: np.ndarray) -> Media:
    return Media("synthetic", audio.size / SR, audio.astype(np.float32), SR, np.zeros((0, 0, 0, 3), np.uint8),
                 np.zeros(0))


@pytest.fixture(scope="module")
def extractor() -> AcousticExtractor:
    return create("librosa")


@pytest.fixture(scope="module")
def cremad():
    return {emotion: decode(path, fps=1) for emotion, path in cremad_clips().items()}


def test_schema_names_every_column(extractor):
    schema = extractor.schema()
    assert schema.names == ["time", "features"] and schema.field("features").type.list_size == 43
    names = json.loads(schema.metadata[b"feature_names"])
    assert names == extractor.feature_names and len(set(names)) == 43
    assert names[:5] == ["f0", "voiced", "periodicity", "h1_h2", "peak_slope"] and "mfcc_24" in names
    assert json.loads(schema.metadata[b"frame_shift"]) == 0.01


def test_harmonic_tone_between_silences(extractor):
    """1 s silence, 1 s of a 200 Hz voice-like tone (H1 6 dB above H2), 0.5 s silence."""
    t = np.arange(SR) / SR
    tone = 0.3 * sum(a * np.sin(2 * np.pi * f * t) for a, f in [(1.0, 200), (0.5, 400), (0.25, 600)])
    audio = np.concatenate([np.zeros(SR), tone, np.zeros(SR // 2)])
    table = extractor.extract(_audio_media(audio))
    features, names = _features(table), extractor.feature_names
    assert len(table) == 1 + audio.size // 160
    np.testing.assert_allclose(np.asarray(table["time"]), np.arange(len(table)) * 0.01)
    voiced = features[:, names.index("voiced")] > 0
    inside, outside = slice(110, 190), np.r_[0:90, 210:len(table)]
    assert voiced[inside].mean() > 0.95 and not voiced[outside].any()
    f0 = features[:, names.index("f0")]
    assert np.median(f0[inside]) == pytest.approx(200, rel=0.01) and np.all(f0[outside] == 0)
    assert np.median(features[inside, names.index("h1_h2")]) == pytest.approx(6.0, abs=1.5)
    rms_db = features[:, names.index("rms_db")]
    assert rms_db[inside].mean() > rms_db[outside].mean() + 40


@pytest.mark.parametrize("emotion", ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"])
def test_cremad_clip(extractor, cremad, emotion):
    media = cremad[emotion]
    table = extractor.extract(media)
    features = _features(table)
    assert abs(len(table) - media.duration / 0.01) <= 1, (len(table), media.duration)
    assert np.isfinite(features).all()
    names = extractor.feature_names
    voiced = features[:, names.index("voiced")] > 0
    assert 0.03 < voiced.mean() < 0.8, "a spoken sentence is partly voiced"
    f0 = features[voiced, names.index("f0")]
    assert np.all((f0 >= 60) & (f0 <= 500))
    assert features[:, names.index("mfcc_00")].std() > 1, "MFCCs must follow the signal"


def test_no_audio_gives_an_empty_table_with_the_schema(extractor, tmp_path):
    with pytest.warns(UserWarning, match="no audio"):
        media = decode(write_media(tmp_path / "silent.mp4", audio=False))
    table = extractor.extract(media)
    assert len(table) == 0 and table.schema.equals(extractor.schema(), check_metadata=True)


def test_very_short_audio_still_gives_rows(extractor):
    table = extractor.extract(_audio_media(np.random.default_rng(0).normal(0, 0.1, 300)))
    assert len(table) == 1 + 300 // 160 and np.isfinite(_features(table)).all()


def test_bad_options_and_audio_fail_naming_the_file_and_the_stage():
    """Checked with exceptions, not asserts: the same under ``python -O``."""
    from pipeline.errors import StageError

    tone = _audio_media(0.1 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR))
    with pytest.raises(StageError, match=r"synthetic: \[acoustic\] pitch_window .* too short") as info:
        create("librosa", pitch_window=0.01).extract(tone)
    assert isinstance(info.value.__cause__, ValueError)
    broken = _audio_media(np.where(np.arange(SR) == 100, np.nan, 0.1).astype(np.float32))
    with pytest.raises(StageError, match="NaN or infinite samples"):
        create("librosa").extract(broken)
