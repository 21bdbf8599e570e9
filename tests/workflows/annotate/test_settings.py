"""Issue 18, item 1: a reused store's visual settings are used as they are, or refused in one line; a new store
looks for several faces."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from extractors import create
from pipeline.store import FeatureStore
from workflows.annotate.settings import PREDICT_MAX_FACES, visual_extractor


def _store_with_visual(tmp_path, **settings) -> FeatureStore:
    """A store whose video ``v`` has a visual stream written by mediapipe with ``settings``."""
    extractor = create("mediapipe", **settings)
    meta = {**{k: v for k, v in extractor.metadata().items() if k != "models"}, "models": "{}"}
    table = pa.table({"time": pa.array(np.arange(3) * 0.1), "face": pa.array([True] * 3)})
    store = FeatureStore(tmp_path / "store")
    store.write_stream("visual", "v", table, meta)
    return store


def test_a_new_store_looks_for_several_faces(tmp_path):
    extractor = visual_extractor(FeatureStore(tmp_path / "new"), ["v"])
    assert extractor.name == "mediapipe" and extractor.config.max_faces == PREDICT_MAX_FACES > 1
    assert visual_extractor(FeatureStore(tmp_path / "new"), ["v"], max_faces=2).config.max_faces == 2


def test_a_store_is_used_with_its_own_settings(tmp_path):
    store = _store_with_visual(tmp_path, max_faces=1)
    extractor = visual_extractor(store, ["v", "not-extracted-yet"])
    assert extractor.config.max_faces == 1  # not re-extracted with 4 faces behind the user's back
    assert extractor.config_hash() == store.stream_info("visual", "v").config_hash


def test_a_store_made_otherwise_is_refused_in_one_line(tmp_path):
    store = _store_with_visual(tmp_path, max_faces=1)
    with pytest.raises(ValueError) as error:
        visual_extractor(store, ["v"], max_faces=4)
    message = str(error.value)
    assert "\n" not in message and "max_faces=1" in message and "max_faces=4" in message
    assert str(store.root) in message and "--store" in message
    other = _store_with_visual(tmp_path / "b", max_faces=2)
    other.write_stream("visual", "w", pa.table({"time": pa.array([0.0]), "face": pa.array([True])}),
                       {**json.loads(json.dumps(create("mediapipe", max_faces=3).metadata())), "models": "{}"})
    with pytest.raises(ValueError, match="different settings"):
        visual_extractor(other, ["v", "w"])
