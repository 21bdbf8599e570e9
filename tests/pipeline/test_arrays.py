"""In-memory arrays: padding, lengths, normalisation, folds, and building a split from store records."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline import arrays as A


def test_fit_lengths_and_normalizer():
    rng = np.random.default_rng(5)
    text, mask = A.pad_sequences([rng.normal(size=(k, 2)) for k in (1, 3)])
    s = A.ArraySplit(text, text + 1, text * 2, mask, mask, mask, labels=np.zeros(2, np.float32), ids=["a", "b"])
    stats = A.fit_normalizer(s)
    z = A.normalize(s, stats)
    real = z.visual[z.visual_mask]
    assert np.allclose(real.mean(0), 0, atol=1e-5) and np.allclose(real.std(0), 1, atol=1e-4)
    assert (z.language[~z.language_mask] == 0).all()
    longer = A.fit_lengths(s, (5, 2, 3))
    assert longer.lengths == (5, 2, 3) and longer.language_mask.sum(1).tolist() == [1, 3]
    assert longer.visual_mask.sum(1).tolist() == [1, 2]


def test_group_folds_keep_videos_together():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] * 2 + ["e"]
    folds = A.group_folds(groups, 3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    assert sorted(len(f) for f in folds) == [4, 5, 5]
    for f in folds:
        for g in {groups[i] for i in f}:
            assert all(i in f for i, x in enumerate(groups) if x == g)




def _record(i: int, label, lengths=(2, 3, 4)) -> dict:
    rng = np.random.default_rng(i)
    return {"language": rng.normal(size=(lengths[0], 3)).astype(np.float32),
            "visual": rng.normal(size=(lengths[1], 2)).astype(np.float32),
            "acoustic": rng.normal(size=(lengths[2], 4)).astype(np.float32),
            "label": label, "segment_id": f"s{i}", "video_id": f"v{i // 2}"}


def test_split_from_records_regression_classification_and_placeholders():
    records = [_record(0, 1.5), _record(1, -0.5, (1, 1, 6)), _record(2, 0.0)]
    s = A.split_from_records(records)
    assert s.task == "regression" and s.labels.tolist() == [1.5, -0.5, 0.0]
    assert s.dims == (3, 2, 4) and s.lengths == (2, 3, 6)
    assert s.acoustic_mask.sum(1).tolist() == [4, 6, 4] and s.video_ids == ["v0", "v0", "v1"]
    assert np.array_equal(s.visual[1, :1], records[1]["visual"]) and (s.visual[1, 1:] == 0).all()
    capped = A.split_from_records(records, max_len=2)
    assert capped.lengths == (2, 2, 2)

    classes = A.split_from_records([_record(0, "sad"), _record(1, "happy"), _record(2, "sad")])
    assert classes.task == "classification" and classes.classes == ["happy", "sad"]
    assert classes.labels.tolist() == [1, 0, 1]

    for task, shape in (("regression", (3,)), ("iemocap", (3, 4)), ("classification", (3,))):
        placeholder = A.split_from_records(records, task=task)
        assert placeholder.task == task and placeholder.labels.shape == shape and not placeholder.labels.any()


def test_split_from_records_refuses_mixed_labels():
    with pytest.raises(ValueError, match="mix numbers and text"):
        A.split_from_records([_record(0, 1.0), _record(1, "happy")])


def test_array_split_checks_shapes_with_exceptions():
    x, mask = A.pad_sequences([np.ones((2, 3))])
    with pytest.raises(ValueError, match="language_mask"):
        A.ArraySplit(x, x, x, mask[:, :1], mask, mask, labels=np.zeros(1, np.float32), ids=["a"])
    with pytest.raises(ValueError, match="task"):
        A.ArraySplit(x, x, x, mask, mask, mask, labels=np.zeros(1, np.float32), ids=["a"], task="sentiment")


def test_ensure_splits_cuts_by_video_and_refuses_too_few():
    records = [_record(i, float(i)) for i in range(10)]
    parts = A.ensure_splits({"all": A.split_from_records(records)})
    assert sorted(parts) == ["test", "train", "valid"]
    seen = [set(parts[k].video_ids) for k in ("train", "valid", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    with pytest.raises(ValueError, match="cannot make train, valid and test"):
        A.ensure_splits({"all": A.split_from_records(records[:2])})
