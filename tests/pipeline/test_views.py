"""Views over a small store written here: word-aligned averages by hand, and per-segment model-ready samples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.store import FeatureStore, feature_matrix
from pipeline.views import SegmentDataset, collate_segments, face_ids, word_aligned
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


# ------------------------------------------------------------------------------------------------ several faces
def _faces_store(tmp_path) -> FeatureStore:
    """Visual frames every 0.1 s over [0, 2.2): face 0 until 1.5 s, face 1 throughout but 0.3 s, no face at 2.0
    and 2.1 s; each row's first feature is 10 * face_id + frame index, so rows identify themselves."""
    store = FeatureStore(tmp_path / "faces")
    rows = []
    for k in range(22):
        found = [f for f, seen in ((0, k < 15), (1, k != 3 and k < 20)) if seen]
        rows += [(round(0.1 * k, 3), f) for f in found] or [(round(0.1 * k, 3), -1)]
    times, ids = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    feats = np.stack([np.where(ids >= 0, 10 * ids + np.round(times * 10), 0), ids >= 0], 1).astype(np.float32)
    table = frames(times, feats, ids >= 0).append_column("face_id", pa.array(ids, pa.int32()))
    store.write_stream("visual", "v", table, meta("visual", 2, 0.1))
    store.write_stream("language", "v", language(WORDS, np.ones((4, 2), np.float32)), meta("language", 2, None))
    store.write_segments(pd.DataFrame({"video_id": ["v", "v"], "segment_id": ["a", "b"], "start": [0.0, 1.0],
                                       "end": [1.0, None], "split": [None, None]}))
    return store


def _served(item) -> list[float]:
    return item["visual"][item["visual_mask"]][:, 0].tolist()


def test_the_face_with_most_frames_is_served(tmp_path):
    store = _faces_store(tmp_path)
    data = SegmentDataset(store, modalities=["visual"])
    # [0, 1): face 0 in 10 frames, face 1 in 9 (it is missed at 0.3 s) -> face 0
    assert _served(data[0]) == [float(k) for k in range(10)]
    # [1, end): face 0 in 5 frames, face 1 in 10 -> face 1, and the two frames without any face (zeros)
    assert _served(data[1]) == [10.0 + k for k in range(10, 20)] + [0.0, 0.0]


def test_a_named_face_is_served_and_minus_one_masks(tmp_path):
    store = _faces_store(tmp_path)
    segments = store.segments().assign(face_id=[1, -1])
    data = SegmentDataset(store, modalities=["visual"], segments=segments)
    assert _served(data[0]) == [10.0 + k for k in range(10) if k != 3]
    assert data[1]["visual_length"] == 0 and not data[1]["visual_mask"].any()
    # a missing value (NaN in a float column) falls back to the face with most frames
    data = SegmentDataset(store, modalities=["visual"], segments=store.segments().assign(face_id=[np.nan, 0.0]))
    assert _served(data[0]) == [float(k) for k in range(10)]
    assert _served(data[1]) == [float(k) for k in range(10, 15)] + [0.0, 0.0]


def test_word_aligned_follows_the_same_face(tmp_path):
    store = _faces_store(tmp_path)
    table = word_aligned(store, modalities=["visual"])
    got = feature_matrix(table, "visual")[:, 0]
    # "hello" [0.02, 0.48] in segment a (face 0): frames 0.1 .. 0.4; "world" [1.30, 1.90] in b (face 1): 1.3 .. 1.9
    assert got[0] == pytest.approx(np.mean([1, 2, 3, 4]))
    assert got[3] == pytest.approx(np.mean([10 + k for k in range(13, 20)]))
    store.write_segments(store.segments().assign(face_id=[1.0, -1.0]))
    table = word_aligned(store, modalities=["visual"])
    got, counts = feature_matrix(table, "visual")[:, 0], table.column("visual_frames").to_pylist()
    assert got[0] == pytest.approx(np.mean([11, 12, 14])) and counts[:2] != [0, 0]  # face 1 was missed at 0.3 s
    assert counts[2:] == [0, 0] and not got[2:].any()


def test_face_ids_of_older_and_mixed_files(store):
    visual = store.read_stream("visual")
    assert "face_id" not in visual.column_names
    np.testing.assert_array_equal(face_ids(visual), np.where(visual.column("face").to_numpy(zero_copy_only=False),
                                                             0, -1))
    newer = frames(np.array([3.0, 3.0]), np.zeros((2, 2), np.float32), np.array([True, True])).append_column(
        "face_id", pa.array([0, 1], pa.int32()))
    store.write_stream("visual", "w", newer, meta("visual", 2, 0.25))
    both = store.read_stream("visual")  # concatenated: the older file's face_id is null
    assert face_ids(both).tolist() == face_ids(visual).tolist() + [0, 1]
    assert (face_ids(store.read_stream("acoustic")) == 0).all(), "a stream without face: all face 0"
