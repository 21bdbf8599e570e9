"""Views over a small store written here: word-aligned averages by hand, and per-segment model-ready samples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.store import FeatureStore, feature_matrix
from pipeline.views import SegmentDataset, collate_segments, word_aligned
from tests.pipeline.streams import frames, language, meta

WORDS = [("hello", 0.02, 0.48), ("big", 0.55, 1.18), ("x", 1.21, 1.23), ("world", 1.30, 1.90)]


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    rng = np.random.default_rng(0)
    store = FeatureStore(tmp_path / "store")
    store.write_stream("language", "v", language(WORDS, rng.normal(size=(4, 2)).astype(np.float32)),
                       meta("language", 2, None))
    a_times = 0.05 + 0.1 * np.arange(20)                       # 20 frames over 2 s
    store.write_stream("acoustic", "v", frames(a_times, rng.normal(size=(20, 3)).astype(np.float32)),
                       meta("acoustic", 3, 0.1))
    v_times = 0.25 * np.arange(8)
    face = np.array([True, False, True, True, True, True, True, True])
    v_feat = rng.normal(size=(8, 2)).astype(np.float32)
    v_feat[3, 1] = np.nan                                       # a frame where one AU failed
    store.write_stream("visual", "v", frames(v_times, v_feat, face), meta("visual", 2, 0.25))
    store.write_segments(pd.DataFrame({"video_id": ["v", "v"], "segment_id": ["v_0", "v_1"], "start": [0.0, 1.0],
                                       "end": [1.0, None], "split": ["train", "test"], "label": [0.5, -2.0]}))
    return store


def _by_hand(times, feats, valid, start, end):
    """Loop-by-loop mean of the frames in [start, end] (else the nearest to the midpoint), ignoring NaN/invalid."""
    idx = [i for i, t in enumerate(times) if start <= t <= end]
    if not idx:
        mid = (start + end) / 2
        idx = [min(range(len(times)), key=lambda i: abs(times[i] - mid))]
    out = []
    for j in range(feats.shape[1]):
        vals = [feats[i, j] for i in idx if valid[i] and not np.isnan(feats[i, j])]
        out.append(sum(vals) / len(vals) if vals else 0.0)
    return np.array(out), sum(1 for i in idx if valid[i])


def test_word_aligned_matches_a_hand_computation(store):
    table = word_aligned(store)
    assert table.num_rows == len(WORDS)
    assert table.column("word").to_pylist() == [w for w, _, _ in WORDS]
    assert table.column("segment_id").to_pylist() == ["v_0", "v_0", "v_1", "v_1"]
    assert table.column("word_index").to_pylist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(feature_matrix(table, "language"),
                                  feature_matrix(store.read_stream("language")))
    for m in ("acoustic", "visual"):
        stream = store.read_stream(m)
        times, feats = stream.column("time").to_numpy(), feature_matrix(stream)
        valid = stream.column("face").to_numpy(zero_copy_only=False) if m == "visual" else np.ones(len(times), bool)
        got, counts = feature_matrix(table, m), table.column(f"{m}_frames").to_pylist()
        for i, (_, s, e) in enumerate(WORDS):
            want, n = _by_hand(times, feats, valid, s, e)
            np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-7, err_msg=f"{m} word {i}")
            assert counts[i] == n
    # "x" lies between acoustic frames: it takes the nearest one (1.25), exactly
    acoustic = feature_matrix(store.read_stream("acoustic"))
    np.testing.assert_array_equal(feature_matrix(table, "acoustic")[2], acoustic[12])
    assert table.to_pandas()["split"].tolist() == ["train", "train", "test", "test"]


def test_segment_dataset_holds_only_its_segment(store):
    data = SegmentDataset(store, max_len={"language": 3, "acoustic": 8, "visual": 6})
    assert isinstance(data, torch.utils.data.Dataset) and len(data) == 2
    first, second = data[0], data[1]
    assert first["transcript"] == "hello big" and second["transcript"] == "x world"
    assert first["language"].shape == (3, 2) and first["language"].dtype == torch.float32
    assert first["language_mask"].tolist() == [True, True, False]
    np.testing.assert_array_equal(first["language"][:2].numpy(), feature_matrix(store.read_stream("language"))[:2])
    assert first["language"][2].abs().sum() == 0
    # acoustic: 10 frames in [0, 1) cut to 8; visual: 4 frames in [0, 1) (0, .25, .5, .75), padded to 6
    assert first["acoustic_length"] == 8 and first["acoustic_mask"].all()
    np.testing.assert_array_equal(first["acoustic"].numpy(), feature_matrix(store.read_stream("acoustic"))[:8])
    assert first["visual_mask"].tolist() == [True] * 4 + [False] * 2
    np.testing.assert_array_equal(second["visual"][:4].numpy(), feature_matrix(store.read_stream("visual"))[4:8])
    assert (first["label"].item(), second["label"].item()) == (0.5, -2.0)
    assert (second["start"], second["end"], second["split"]) == (1.0, None, "test")
    batch = next(iter(DataLoader(data, batch_size=2, collate_fn=collate_segments)))
    assert batch["acoustic"].shape == (2, 8, 3) and batch["visual_mask"].shape == (2, 6)
    assert batch["label"].tolist() == [0.5, -2.0] and batch["segment_id"] == ["v_0", "v_1"]
    assert batch["language_length"].tolist() == [2, 2]


def test_segment_dataset_split_filter(store):
    data = SegmentDataset(store, split="test", modalities=["acoustic"])
    assert len(data) == 1 and set(k for k in data[0] if k.startswith("visual")) == set()
    assert data[0]["acoustic"].shape == (375, 3) and data[0]["acoustic_length"] == 10


def test_whole_video_segments_without_split(store):
    store.write_segments(pd.DataFrame({"video_id": ["v"], "segment_id": ["v"], "start": [0.0], "end": [None],
                                       "split": [None]}))
    table = word_aligned(store, modalities=["acoustic"])
    assert table.num_rows == len(WORDS) and table.column("split").to_pylist() == [None] * len(WORDS)
    assert table.column("word_index").to_pylist() == [0, 1, 2, 3]
    item = SegmentDataset(store)[0]
    assert item["split"] is None and item["end"] is None and item["transcript"] == "hello big x world"
    assert torch.isnan(item["label"])
