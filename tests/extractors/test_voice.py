"""The voice stream (``silero-vad``): speech and loudness every 10 ms of the video's time, from decoded audio."""
from __future__ import annotations

import numpy as np
import pytest

from extractors import create
from extractors.base import DEFAULT_EXTRACTORS
from extractors.media import decode
from pipeline.arrays import MODALITIES, STORED_MODALITIES
from pipeline.store import FeatureStore, feature_matrix
from pipeline.views import voice_series
from tests.extractors.media_files import cremad_clips


@pytest.fixture(scope="module")
def voice():
    return create("silero-vad")


def test_speech_and_level_on_a_real_clip_on_the_videos_grid(voice):
    media = decode(str(cremad_clips()["ANG"]), video=False)
    table = voice.extract(media)
    times = table.column("time").to_numpy()
    level, speech = feature_matrix(table).T
    assert voice.modality == "voice" and voice.modality in STORED_MODALITIES and voice.modality not in MODALITIES
    assert DEFAULT_EXTRACTORS["voice"] == "silero-vad" and voice.feature_names == ["level_db", "speech"]
    assert len(times) == int(media.duration / 0.01) and np.allclose(times, 0.005 + 0.01 * np.arange(len(times)))
    assert 0.5 < speech.sum() * 0.01 < media.duration  # "Don't forget a jacket", with silence around it
    assert level[speech > 0].mean() > level[speech == 0].mean() + 10  # speech is louder than the pauses
    assert table.schema.metadata[b"detector"] == b"silero-vad"
    # a part of the media (a chunk) gets the whole's blocks where they overlap: times on the video's 10-ms grid
    part = voice.extract(media.crop(0.503, None))
    assert np.allclose(part.column("time").to_numpy()[:3], [0.515, 0.525, 0.535])
    whole_level = dict(zip(np.round(times, 3), level))
    assert np.allclose([whole_level[t] for t in np.round(part.column("time").to_numpy(), 3)],
                       feature_matrix(part)[:, 0], atol=1e-4)


def test_no_audio_is_an_empty_stream_and_the_view_reads_it(voice, tmp_path):
    media = decode(str(cremad_clips()["SAD"]), video=False)
    silent = voice.extract(media.crop(0.0, 0.0))
    assert silent.num_rows == 0 and silent.schema.names == ["time", "features"]
    store = FeatureStore(tmp_path / "store")
    store.write_stream("voice", "sad", voice.extract(media))
    series = voice_series(store, "sad")
    assert series.detector == "silero-vad" and series.frame_shift == 0.01 and series.speech.any()
    assert len(series.times) == len(series.level_db) == len(series.speech)
    nothing = voice_series(store, "missing")
    assert nothing.detector is None and len(nothing.times) == 0
