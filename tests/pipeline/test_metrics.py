"""The metrics against values computed by hand, and the library-backed ones against independent hand computations."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from pipeline import metrics as M

# Labels ending in .5 and predictions on .5: numpy rounds half to even (0.5 -> 0, -1.5 -> -2, 2.5 -> 2).
LABELS = np.array([1.0, 2.0, 0.5, -2.0, 0.0, 2.0])
PREDS = np.array([0.3, 1.0, -0.2, -1.5, -0.1, 2.5])


def test_sentiment_metrics_by_hand():
    m = M.sentiment_metrics(PREDS, LABELS)
    assert m["mae"] == pytest.approx(3.5 / 6)
    # rounded preds [0, 1, 0, -2, 0, 2] vs rounded labels [1, 2, 0, -2, 0, 2]
    assert m["acc7"] == pytest.approx(4 / 6)
    assert m["acc5"] == pytest.approx(4 / 6)
    # non-0: truth>0 [T,T,T,F,T], pred>0 [T,T,F,F,T]; F1(T)=6/7 (support 4), F1(F)=2/3 (support 1)
    assert m["acc2_non0"] == pytest.approx(4 / 5)
    assert m["f1_non0"] == pytest.approx(86 / 105)
    # MulT calls f1_score(pred, truth): the same per-class F1s weighted by the predicted supports (3 T, 2 F)
    assert m["f1_non0_mult"] == pytest.approx((3 * 6 / 7 + 2 * 2 / 3) / 5)
    # has-0: truth>=0 [T,T,T,F,T,T], pred>=0 [T,T,F,F,F,T]; F1(T)=3/4 (support 5), F1(F)=1/2 (support 1)
    assert m["acc2_has0"] == pytest.approx(4 / 6)
    assert m["f1_has0"] == pytest.approx(4.25 / 6)


def test_acc7_rounds_half_to_even_and_clips():
    # half-up rounding would give 1, 3, 0 | clipping first makes 3.7 -> 3 and -9 -> -3
    assert M.multiclass_acc(np.array([0.5, 2.5, -0.5]), np.array([0.0, 2.0, 0.0])) == 1.0
    assert M.sentiment_metrics(np.array([3.7, -9.0]), np.array([3.0, -3.0]))["acc7"] == 1.0
    assert M.sentiment_metrics(np.array([1.5]), np.array([1.0]))["acc7"] == 0.0  # 1.5 -> 2
    assert list(M.sentiment_classes(np.array([-3.5, -2.5, -0.5, 0.5, 1.5, 4.0]))) == [-3, -2, 0, 0, 2, 3]


def test_corr_is_pearson_and_nan_when_constant():
    x = np.array([-2.0, -1.0, 0.5, 3.0])
    assert M.sentiment_metrics(2 * x + 1, x)["corr"] == pytest.approx(1.0)
    assert M.sentiment_metrics(-x, x)["corr"] == pytest.approx(-1.0)
    assert math.isnan(M.sentiment_metrics(np.full(4, 0.3), x)["corr"])


def test_all_zero_labels():
    m = M.sentiment_metrics(np.array([0.2, -0.4, 0.0]), np.zeros(3))
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])  # nothing left after leaving zeros out
    assert math.isnan(m["corr"])
    assert m["mae"] == pytest.approx(0.2)
    assert m["acc7"] == 1.0
    assert m["acc2_has0"] == pytest.approx(2 / 3)  # -0.4 is the one negative prediction
    assert m["f1_has0"] == pytest.approx(0.8)  # class True: p=1, r=2/3; class False has no support


def test_weighted_f1_by_hand_weights_by_truth_support():
    truth, pred = np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0])
    # F1(1) = 4/5 (support 3), F1(0) = 2/3 (support 1). MulT's swapped call would weight by (2, 2): 0.7333
    assert M.weighted_f1(truth, pred) == pytest.approx((0.8 * 3 + 2 / 3) / 4)
    assert M.weighted_f1(np.array([0, 0]), np.array([1, 1])) == 0.0
    assert math.isnan(M.weighted_f1(np.array([]), np.array([])))


def test_weighted_f1_matches_sklearn():
    import sklearn.metrics as sklearn_metrics

    rng = np.random.default_rng(0)
    for n_classes in (2, 3, 7):
        truth, pred = rng.integers(0, n_classes, 40), rng.integers(0, n_classes, 40)
        pred[:5] = n_classes  # a class never in the truth
        expected = sklearn_metrics.f1_score(truth, pred, average="weighted", zero_division=0)
        assert M.weighted_f1(truth, pred) == pytest.approx(expected)


def test_iemocap_metrics_by_hand():
    labels = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]])  # columns: happy, sad, angry, neutral
    one_hot = np.eye(2)[labels]  # (3, 4, 2)
    pred = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 1]])  # happy 3/3, sad 2/3, angry 3/3, neutral 2/3 right
    logits = np.where(np.eye(2)[pred] > 0, 2.0, -1.0)
    for given in (labels, one_hot):
        m = M.iemocap_metrics(logits, given)
        assert m["happy_acc"] == 1.0 and m["angry_acc"] == 1.0
        assert m["sad_acc"] == pytest.approx(2 / 3) and m["neutral_acc"] == pytest.approx(2 / 3)
        # sad: truth [0,1,0], pred [0,0,0]: F1(0): p=2/3, r=1 -> 0.8 (support 2); F1(1)=0 (support 1)
        assert m["sad_f1"] == pytest.approx(0.8 * 2 / 3)
        assert m["mean_acc"] == pytest.approx((1 + 2 / 3 + 1 + 2 / 3) / 4)


def test_confusion_matrices():
    cm = M.confusion("regression", PREDS, LABELS)["acc7"]
    matrix = np.array(cm["matrix"])
    assert cm["classes"] == list(range(-3, 4)) and matrix.sum() == 6
    assert matrix[cm["classes"].index(1), cm["classes"].index(0)] == 1  # label 1 predicted 0.3
    assert np.trace(matrix) == 4
    cls = M.confusion("classification", np.array([[2.0, 1.0], [0.0, 1.0], [0.0, 3.0]]), np.array([0, 0, 1]))
    assert cls["classification"]["matrix"] == [[1, 1], [0, 1]]


def test_jsonable_replaces_nan():
    assert M.jsonable({"a": float("nan"), "b": [np.float32(1.5), np.int64(2)]}) == {"a": None, "b": [1.5, 2]}


# Independent references: the definitions written out in numpy, as the code computed them before the libraries.
def _f1_by_hand(truth: np.ndarray, pred: np.ndarray) -> float:
    total, score = 0.0, 0.0
    for c in np.union1d(truth, pred):
        tp = float(np.sum((truth == c) & (pred == c)))
        n_pred, support = float(np.sum(pred == c)), float(np.sum(truth == c))
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support if support else 0.0
        score += support * (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        total += support
    return score / total


def _pearson_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    return float(np.sum(dx * dy) / math.sqrt(np.sum(dx * dx) * np.sum(dy * dy)))


def _confusion_by_hand(truth: np.ndarray, pred: np.ndarray, classes: list) -> np.ndarray:
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truth.tolist(), pred.tolist()):
        matrix[classes.index(t), classes.index(p)] += 1
    return matrix


@pytest.mark.parametrize("seed", range(5))
def test_library_metrics_equal_hand_computations(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 200))
    labels = np.round(rng.uniform(-3, 3, n) * 5) / 5  # some exact zeros and .5s
    preds = labels + rng.normal(0, 1.2, n)
    m = M.sentiment_metrics(preds, labels)
    assert abs(m["mae"] - float(np.mean(np.abs(preds - labels)))) < 1e-9
    assert abs(m["corr"] - _pearson_by_hand(preds, labels)) < 1e-9
    assert abs(m["corr"] - float(np.corrcoef(preds, labels)[0, 1])) < 1e-9
    truth_has0, pred_has0 = labels >= 0, preds >= 0
    assert abs(m["acc2_has0"] - float(np.mean(truth_has0 == pred_has0))) < 1e-9
    assert abs(m["f1_has0"] - _f1_by_hand(truth_has0, pred_has0)) < 1e-9
    non0 = labels != 0
    if non0.any():
        assert abs(m["f1_non0"] - _f1_by_hand(labels[non0] > 0, preds[non0] > 0)) < 1e-9
    classes = int(rng.integers(2, 8))
    truth, pred = rng.integers(0, classes, n), rng.integers(0, classes + 1, n)  # pred has a class truth lacks
    assert abs(M.weighted_f1(truth, pred) - _f1_by_hand(truth, pred)) < 1e-9
    assert abs(M.accuracy(truth, pred) - float(np.mean(truth == pred))) < 1e-9
    everything = list(range(classes + 1))
    assert np.array_equal(M.confusion_matrix(truth, pred, everything), _confusion_by_hand(truth, pred, everything))


def test_empty_constant_and_diverged_inputs():
    empty = M.sentiment_metrics(np.array([]), np.array([]))
    assert all(math.isnan(v) for v in empty.values())
    assert math.isnan(M.accuracy(np.array([]), np.array([])))
    assert M.confusion_matrix(np.array([]), np.array([]), [0, 1]).tolist() == [[0, 0], [0, 0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant side gives NaN without a warning
        assert math.isnan(M.pearson(np.ones(5), np.arange(5.0)))
        assert math.isnan(M.pearson(np.arange(1.0), np.arange(1.0)))
    diverged = M.sentiment_metrics(np.array([np.nan, 1.0, 2.0]), np.array([1.0, 1.0, 2.0]))
    assert math.isnan(diverged["mae"]) and diverged["acc7"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        M.confusion_matrix(np.array([0, 2]), np.array([0, 1]), [0, 1])  # 2 is no class
    with pytest.raises(ValueError):
        M.sentiment_metrics(np.zeros(3), np.zeros(4))


def test_iemocap_emotions_come_from_arrays():
    from pipeline import arrays

    assert M.IEMOCAP_EMOTIONS is arrays.IEMOCAP_EMOTIONS


@pytest.mark.parametrize("seed", range(5))
def test_unweighted_accuracy_is_balanced_accuracy_and_macro_f1_is_sklearns(seed):
    from sklearn.metrics import balanced_accuracy_score, f1_score

    rng = np.random.default_rng(seed)
    n_classes = 8
    truth = rng.choice(n_classes, 200, p=np.r_[0.05, np.full(7, 0.95 / 7)])  # RAVDESS-like: one rarer class
    logits = rng.normal(size=(200, n_classes)) + 2.0 * np.eye(n_classes)[truth] * (rng.random(200) < 0.5)[:, None]
    m = M.classification_metrics(logits, truth)
    assert m["unweighted_accuracy"] == pytest.approx(balanced_accuracy_score(truth, logits.argmax(-1)))
    assert m["macro_f1"] == pytest.approx(f1_score(truth, logits.argmax(-1), average="macro"))
    assert set(m) == {"acc", "f1", "unweighted_accuracy", "macro_f1"}


def test_unweighted_accuracy_by_hand_weighs_every_class_alike():
    truth, pred = np.array([0, 0, 0, 0, 0, 0, 1, 1]), np.zeros(8, int)  # always the majority class
    assert M.accuracy(truth, pred) == 0.75
    assert M.unweighted_accuracy(truth, pred) == 0.5  # recall 1 for class 0, 0 for class 1
    assert M.macro_f1(truth, pred) == pytest.approx((2 * 0.75 / 1.75 + 0) / 2)
    assert math.isnan(M.unweighted_accuracy(np.array([]), np.array([])))


def test_iemocap_reports_unweighted_accuracy_and_macro_f1_per_emotion_and_their_mean():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    labels, logits = rng.integers(0, 2, (40, 4)), rng.normal(size=(40, 4, 2))
    m = M.iemocap_metrics(logits, labels)
    uas = [balanced_accuracy_score(labels[:, k], logits[:, k].argmax(-1)) for k in range(4)]
    for k, emotion in enumerate(("happy", "sad", "angry", "neutral")):
        assert m[f"{emotion}_unweighted_accuracy"] == pytest.approx(uas[k])
        assert f"{emotion}_macro_f1" in m
    assert m["mean_unweighted_accuracy"] == pytest.approx(np.mean(uas))
    assert "mean_macro_f1" in m


def test_classification_confusion_names_its_classes():
    outputs, labels = np.array([[2.0, 1.0], [0.0, 1.0], [0.0, 3.0]]), np.array([0, 0, 1])
    named = M.confusion("classification", outputs, labels, ["angry", "calm"])["classification"]
    assert named == {"classes": ["angry", "calm"], "matrix": [[1, 1], [0, 1]]}
    with pytest.raises(ValueError, match="3 class names for 2 outputs"):
        M.confusion("classification", outputs, labels, ["a", "b", "c"])
