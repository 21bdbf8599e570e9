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


@pytest.mark.parametrize("sizes, k", [([60] * 24, 6), ([5, 1, 9, 2, 2, 7, 3], 3), ([5, 1, 1, 1, 1, 1], 3),
                                      ([50, 3, 3, 3, 2], 3), ([3, 3, 3], 3), ([1] * 10, 10)])
def test_cv_folds_test_every_sample_once_and_never_share_a_group(sizes, k):
    groups = np.repeat([f"g{i:02d}" for i in range(len(sizes))], sizes)
    np.random.default_rng(0).shuffle(groups)  # the folds must not depend on the samples' order
    folds = A.group_cv_folds(groups.tolist(), k)
    assert len(folds) == k
    tested = np.concatenate([f["test"] for f in folds])
    assert sorted(tested.tolist()) == list(range(len(groups)))  # every sample tested exactly once
    for f in folds:
        assert sorted(np.concatenate([f["train"], f["valid"], f["test"]]).tolist()) == list(range(len(groups)))
        roles = [set(groups[f[name]].tolist()) for name in ("train", "valid", "test")]
        assert all(roles) and not (roles[0] & roles[1] or roles[0] & roles[2] or roles[1] & roles[2])


def test_cv_folds_of_ravdess_actors_are_runs_of_four_validated_on_the_next_two():
    actors = np.repeat(np.arange(1, 25), 60)
    folds = A.group_cv_folds(actors.tolist(), 6)
    assert [sorted(set(actors[f["test"]].tolist())) for f in folds] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12],
                                                                          [13, 14, 15, 16], [17, 18, 19, 20],
                                                                          [21, 22, 23, 24]]
    assert [sorted(set(actors[f["valid"]].tolist())) for f in folds] == [[5, 6], [9, 10], [13, 14], [17, 18],
                                                                           [21, 22], [1, 2]]
    assert all(len(f["train"]) == 18 * 60 for f in folds)


@pytest.mark.parametrize("groups, k", [(["a", "b"], 2), (["a", "b", "c"], 4), (["a", "a", "b", "c"], 1)])
def test_cv_folds_refuse_too_few_groups(groups, k):
    with pytest.raises(ValueError, match="groups"):
        A.group_cv_folds(groups, k)


def test_length_batches_hold_every_sample_once_group_similar_lengths_and_repeat_from_the_rng():
    costs = np.random.default_rng(1).integers(10, 400, 1000).astype(float)
    batches = A.length_batches(costs, 32, np.random.default_rng([0, 3]))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert max(len(b) for b in batches) == 32
    again = A.length_batches(costs, 32, np.random.default_rng([0, 3]))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # resumable: (seed, epoch) decides
    other = A.length_batches(costs, 32, np.random.default_rng([0, 4]))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))
    spread = np.mean([np.ptp(costs[b]) for b in batches])
    random = np.mean([np.ptp(costs[b]) for b in np.array_split(np.random.default_rng(0).permutation(1000), 32)])
    assert spread < 0.2 * random  # a batch's padding is a fraction of a shuffled batch's


def test_concat_splits_pads_on_each_splits_padding_side():
    rng = np.random.default_rng(0)
    a, b = (A.ArraySplit(*(rng.normal(size=(2, t, 3)).astype(np.float32) for t in (2, 3, 4)),
                         *(np.ones((2, t), bool) for t in (2, 3, 4)), labels=np.zeros(2, np.float32),
                         ids=[f"{name}0", f"{name}1"], padding="start") for name in ("a", "b"))
    b = A.ArraySplit(b.language[:, :1], b.visual, b.acoustic, b.language_mask[:, :1], b.visual_mask,
                     b.acoustic_mask, labels=b.labels, ids=b.ids, padding="start")
    joined = A.concat_splits([a, b])
    assert joined.ids == ["a0", "a1", "b0", "b1"] and joined.lengths == (2, 3, 4)
    assert joined.language_mask[2:].tolist() == [[False, True], [False, True]]  # padded before, as MulT's files
    assert np.array_equal(joined.language[2:, 1], b.language[:, 0])
