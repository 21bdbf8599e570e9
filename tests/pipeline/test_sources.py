"""Loaders of the three benchmark formats (small files written here in exactly their schemas) and the real MOSI table."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import arrays as A
from pipeline.sources import load_source

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
MOSI_PARQUET = SHARED / "data" / "mosi" / "mosi_valid_word_aligned.parquet"


def _mult_split(rng, n: int, t: tuple[int, int, int], iemocap: bool = False) -> dict:
    """MulT's layout: features zero-padded at the START, COVAREP with -inf, ids (N, 3) bytes [video, start, end]."""
    def feats(steps, dim, real):
        x = rng.normal(size=(n, steps, dim)).astype(np.float32)
        for i, r in enumerate(real):
            x[i, : steps - r] = 0.0
        return x
    real = [2 + i % 3 for i in range(n)]
    audio = feats(t[2], 4, [min(r, t[2]) for r in real])
    audio[0, -1, 0] = -np.inf
    if iemocap:
        labels = np.eye(2, dtype=np.float32)[rng.integers(0, 2, (n, 4))]  # (N, 4, 2) one-hot
    else:
        labels = rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32)
    ids = np.array([[f"vid{i // 2}".encode(), str(i).encode(), b"9"] for i in range(n)])
    return {"text": feats(t[0], 6, real), "vision": feats(t[1], 5, [min(r, t[1]) for r in real]),
            "audio": audio, "labels": labels, "id": ids}


def _write_pickle(path: Path, obj) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def test_mult_pickle_aligned_and_unaligned(tmp_path):
    rng = np.random.default_rng(0)
    data = {s: _mult_split(rng, n, (5, 5, 5)) for s, n in (("train", 6), ("valid", 3), ("test", 4))}
    splits = load_source(_write_pickle(tmp_path / "mosi_data.pkl", data))
    assert sorted(splits) == ["test", "train", "valid"]
    train = splits["train"]
    assert len(train) == 6 and train.dims == (6, 5, 4) and train.task == "regression"
    assert train.labels.shape == (6,) and train.labels[2] == pytest.approx(data["train"]["labels"][2, 0, 0])
    assert train.language_mask[0].tolist() == [False, False, False, True, True]  # MulT pads at the start
    assert np.isfinite(train.acoustic).all()  # -inf zeroed as MulT does
    assert train.ids[1] == "vid0_1_9" and train.video_ids[2] == "vid1"

    noalign = {s: _mult_split(rng, 4, (6, 9, 12)) for s in ("train", "valid", "test")}
    splits = load_source(_write_pickle(tmp_path / "mosi_data_noalign.pkl", noalign))
    assert splits["valid"].lengths == (6, 9, 12)
    assert splits["valid"].visual_mask.sum(1).tolist() == [2, 3, 4, 2]


def test_mult_iemocap_labels(tmp_path):
    rng = np.random.default_rng(1)
    data = {s: _mult_split(rng, 5, (4, 4, 4), iemocap=True) for s in ("train", "valid", "test")}
    splits = load_source(_write_pickle(tmp_path / "iemocap_data.pkl", data))
    assert splits["test"].task == "iemocap"
    assert splits["test"].labels.shape == (5, 4)
    mult = data["test"]["labels"].argmax(-1)  # (N, 4): neutral, happy, sad, angry
    assert (splits["test"].labels == mult[:, [1, 2, 3, 0]]).all()  # happy, sad, angry, neutral


def test_folder_picks_aligned_or_unaligned(tmp_path):
    rng = np.random.default_rng(2)
    _write_pickle(tmp_path / "mosi_data.pkl", {s: _mult_split(rng, 3, (4, 4, 4)) for s in ("train", "valid")})
    _write_pickle(tmp_path / "mosi_data_noalign.pkl", {s: _mult_split(rng, 3, (4, 7, 8)) for s in ("train", "valid")})
    assert load_source(tmp_path, aligned=True)["train"].lengths == (4, 4, 4)
    assert load_source(tmp_path, aligned=False)["train"].lengths == (4, 7, 8)


def _mmsa_split(rng, n: int, aligned: bool) -> dict:
    """MMSA's layout: padded at the END, BERT ids (N, 3, T) with the attention mask in row 1, lengths for A/V."""
    t_l, t_v, t_a = (6, 6, 6) if aligned else (6, 10, 12)
    words = [3, 6, 1][:n] + [2] * max(0, n - 3)
    text_bert = np.zeros((n, 3, t_l), np.float32)
    for i, w in enumerate(words):
        text_bert[i, 1, :w] = 1
    split = {"raw_text": np.array([f"text {i}" for i in range(n)], dtype=object),
             "text": rng.normal(size=(n, t_l, 7)).astype(np.float32), "text_bert": text_bert,
             "vision": rng.normal(size=(n, t_v, 5)).astype(np.float32),
             "audio": rng.normal(size=(n, t_a, 3)).astype(np.float32),
             "id": np.array([f"vid{i}$_${i + 1}" for i in range(n)], dtype=object),
             "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
             "classification_labels": np.zeros(n, np.float32),
             "annotations": np.array(["Neutral"] * n, dtype=object)}
    if not aligned:
        split["vision_lengths"] = [4, 10, 2][:n] + [5] * max(0, n - 3)
        split["audio_lengths"] = [12, 1, 3][:n] + [6] * max(0, n - 3)
    return split


def test_mmsa_pickles(tmp_path):
    rng = np.random.default_rng(3)
    unaligned = {s: _mmsa_split(rng, 3, False) for s in ("train", "valid", "test")}
    splits = load_source(_write_pickle(tmp_path / "unaligned_50.pkl", unaligned))
    s = splits["train"]
    assert s.dims == (7, 5, 3) and s.lengths == (6, 10, 12)
    assert s.language_mask.sum(1).tolist() == [3, 6, 1]
    assert s.visual_mask.sum(1).tolist() == [4, 10, 2] and s.acoustic_mask.sum(1).tolist() == [12, 1, 3]
    assert s.visual_mask[0].tolist()[:5] == [True] * 4 + [False]  # padded at the end
    assert s.labels.tolist() == pytest.approx(unaligned["train"]["regression_labels"].tolist())
    assert s.ids[1] == "vid1$_$2" and s.video_ids[1] == "vid1"

    aligned = {s: _mmsa_split(rng, 3, True) for s in ("train", "valid", "test")}
    a = load_source(_write_pickle(tmp_path / "aligned_50.pkl", aligned))["valid"]
    assert (a.acoustic_mask == a.language_mask).all() and a.language_mask.sum(1).tolist() == [3, 6, 1]


def _word_aligned_table(n: int, rng) -> pa.Table:
    lens = [3, 1, 4, 2, 5, 2][:n]
    def lists(dim):
        return [rng.normal(size=(k, dim)).astype(np.float32).tolist() for k in lens]
    return pa.table({
        "segment_id": [f"v{i // 2}[{i}]" for i in range(n)], "video_id": [f"v{i // 2}" for i in range(n)],
        "label": pa.array(rng.uniform(-3, 3, n), pa.float32()),
        "words": [["w"] * k for k in lens],
        "glove300": pa.array(lists(300), pa.list_(pa.list_(pa.float32(), 300))),
        "facet47": pa.array(lists(47), pa.list_(pa.list_(pa.float32(), 47))),
        "covarep74": pa.array(lists(74), pa.list_(pa.list_(pa.float32(), 74))),
    })


def test_word_aligned_parquet(tmp_path):
    rng = np.random.default_rng(4)
    table = _word_aligned_table(6, rng)
    pq.write_table(table, tmp_path / "t.parquet")
    splits = load_source(tmp_path / "t.parquet")
    s = splits["all"]
    assert s.dims == (300, 47, 74) and s.lengths == (5, 5, 5)
    assert s.language_mask.sum(1).tolist() == [3, 1, 4, 2, 5, 2]
    assert s.visual[2, 3] == pytest.approx(np.asarray(table.column("facet47")[2].as_py()[3]))
    capped = load_source(tmp_path / "t.parquet", max_len=2)["all"]
    assert capped.lengths == (2, 2, 2) and capped.language_mask.sum(1).max() == 2
    # without a split column: train/valid/test by video, never splitting a video
    parts = A.ensure_splits(splits)
    assert sum(len(p) for p in parts.values()) == 6
    videos = [set(p.video_ids) for p in parts.values()]
    assert all(not (a & b) for i, a in enumerate(videos) for b in videos[i + 1:])


@pytest.mark.skipif(not MOSI_PARQUET.exists(), reason="shared MOSI data absent")
def test_real_mosi_word_aligned():
    s = load_source(MOSI_PARQUET)["all"]
    assert len(s) == 229 and s.dims == (300, 47, 74) and s.lengths == (44, 44, 44)
    assert s.labels.min() == -3.0 and s.labels.max() == 3.0
    assert len(set(s.video_ids)) == 10 and s.ids[0] == "WKA5OygbEKI[0]"
    assert s.language_mask[0].sum() == 18 and s.language_mask.sum() == 2524


def _small_store(root: Path):
    """Two videos of words, acoustic and visual frames; three labelled segments and one without a label."""
    import pandas as pd

    from pipeline.store import FeatureStore
    from tests.pipeline.streams import frames, language, meta

    rng = np.random.default_rng(6)
    store = FeatureStore(root)
    words = [("a", 0.1, 0.4), ("b", 0.5, 0.9), ("c", 1.1, 1.4), ("d", 1.6, 1.9)]
    for vid in ("v1", "v2"):
        store.write_stream("language", vid, language(words, rng.normal(size=(4, 5)).astype(np.float32)),
                           meta("language", 5, None))
        store.write_stream("acoustic", vid, frames(0.05 + 0.1 * np.arange(20), rng.normal(size=(20, 3))
                                                   .astype(np.float32)), meta("acoustic", 3, 0.1))
        v_feat = rng.normal(size=(8, 2)).astype(np.float32)
        v_feat[1, 0] = np.nan
        store.write_stream("visual", vid, frames(0.25 * np.arange(8), v_feat, np.ones(8, bool)),
                           meta("visual", 2, 0.25))
    store.write_segments(pd.DataFrame({
        "video_id": ["v1", "v1", "v2", "v2"], "segment_id": ["v1_0", "v1_1", "v2_0", "v2_1"],
        "start": [0.0, 1.0, 0.0, 1.0], "end": [1.0, 2.0, 1.0, 2.0], "split": ["train", "train", "valid", "valid"],
        "label": [1.5, -0.5, 2.0, np.nan]}))
    return store


def test_store_unaligned_and_word_aligned(tmp_path):
    store = _small_store(tmp_path / "store")
    splits = load_source(tmp_path / "store")
    assert sorted(splits) == ["train", "valid"] and len(splits["valid"]) == 1  # the unlabelled segment is left out
    train = splits["train"]
    assert train.dims == (5, 2, 3) and train.labels.tolist() == [1.5, -0.5]
    assert train.ids == ["v1_0", "v1_1"] and train.video_ids == ["v1", "v1"]
    assert train.language_mask.sum(1).tolist() == [2, 2]  # two words per one-second segment
    assert train.acoustic_mask.sum(1).tolist() == [10, 10] and train.visual_mask.sum(1).tolist() == [4, 4]
    assert np.isfinite(train.visual).all()  # a failed AU (NaN) becomes 0
    words = store.read_stream("language", ["v1"])
    from pipeline.store import feature_matrix
    assert np.allclose(train.language[1, :2], feature_matrix(words)[2:4])

    aligned = load_source(tmp_path / "store", aligned=True)["train"]
    assert aligned.lengths == (2, 2, 2) and (aligned.acoustic_mask == aligned.language_mask).all()
    # word "a" spans [0.1, 0.4]: acoustic frames at 0.15, 0.25, 0.35 averaged
    acoustic = feature_matrix(store.read_stream("acoustic", ["v1"]))
    assert np.allclose(aligned.acoustic[0, 0], acoustic[1:4].mean(0), atol=1e-6)


def test_padding_side_travels_with_the_data(tmp_path):
    """MulT's files pad at the start; a real all-zero step after the first real one stays real."""
    text = np.zeros((2, 5, 3), np.float32)
    text[0, 2:] = 1.0
    text[0, 3] = 0.0  # a real step that happens to be zero
    text[1, 1:] = 2.0
    vision, audio = np.ones((2, 4, 2), np.float32), np.ones((2, 6, 2), np.float32)
    vision[:, :2] = 0.0
    data = {"train": {"text": text, "vision": vision, "audio": audio,
                      "labels": np.zeros((2, 1, 1), np.float32), "id": np.array([[b"a", b"0", b"1"]] * 2)}}
    split = load_source(_write_pickle(tmp_path / "mosi_data_noalign.pkl", data))["train"]
    assert split.padding == "start"
    assert split.language_mask.tolist() == [[False, False, True, True, True], [False, True, True, True, True]]
    assert split.visual_mask.sum(1).tolist() == [2, 2] and split.acoustic_mask.all()
    assert A.fit_lengths(split, (5, 4, 6)).padding == "end"
