"""The benchmarks' metrics, computed exactly as the reference implementations do.

Sentiment (MOSI / MOSEI, labels in [-3, 3]) follows MulT's ``eval_mosei_senti`` and MMSA's ``MetricsTop``:

- ``mae``: mean absolute error; ``corr``: Pearson correlation (``np.corrcoef``; NaN when either side is constant);
- ``acc7``: clip predictions and labels to [-3, 3], round both half to even (``np.round``), share of equal classes;
  ``acc5``: the same with [-2, 2];
- ``acc2_non0`` / ``f1_non0``: zero labels left out, positive means ``> 0`` (the paper's Acc2 and F1);
- ``acc2_has0`` / ``f1_has0``: all samples, positive means ``>= 0`` (MMSA's "Has0").

F1 is scikit-learn's ``f1_score(truth, pred, average="weighted")``: per-class F1 averaged with the class supports of
the truth as weights, a class never predicted scoring 0. MMSA passes (truth, pred) in that order; MulT passes them
swapped, which weights by the predicted supports instead; we follow the documented argument order.

IEMOCAP follows MulT's ``eval_iemocap``: per emotion, argmax of the two logits against the 0/1 label, binary accuracy
and weighted F1. The emotion order is the project's (``model.IEMOCAP_EMOTIONS``): happy, sad, angry, neutral;
MulT's ``iemocap_data.pkl`` stores neutral, happy, sad, angry and :mod:`pipeline.datasets` reorders it on loading.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

IEMOCAP_EMOTIONS = ("happy", "sad", "angry", "neutral")  # = model.IEMOCAP_EMOTIONS
SENTIMENT_CLASSES = tuple(range(-3, 4))  # the seven classes of Acc7


def multiclass_acc(preds: np.ndarray, truths: np.ndarray) -> float:
    """Share of samples whose rounded (half to even) prediction equals the rounded truth. (N,), (N,) -> float."""
    preds, truths = np.asarray(preds, dtype=np.float64), np.asarray(truths, dtype=np.float64)
    assert preds.shape == truths.shape, f"shape mismatch {preds.shape} vs {truths.shape}"
    if truths.size == 0:
        return math.nan
    return float(np.sum(np.round(preds) == np.round(truths)) / float(len(truths)))


def accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """Share of equal entries; NaN for no samples."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    assert truth.shape == pred.shape, f"shape mismatch {truth.shape} vs {pred.shape}"
    return float(np.mean(truth == pred)) if truth.size else math.nan


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's ``f1_score(truth, pred, average="weighted")`` (with ``zero_division=0``); NaN for no samples.

    The classes are the union of those in ``truth`` and ``pred``; each class's F1 is weighted by its support in
    ``truth``, so a class that only appears in ``pred`` lowers the others' precision but has weight 0.
    """
    truth, pred = np.asarray(truth).reshape(-1), np.asarray(pred).reshape(-1)
    assert truth.shape == pred.shape, f"shape mismatch {truth.shape} vs {pred.shape}"
    if truth.size == 0:
        return math.nan
    total, score = 0, 0.0
    for c in np.union1d(truth, pred):
        tp = float(np.sum((truth == c) & (pred == c)))
        n_pred, support = float(np.sum(pred == c)), float(np.sum(truth == c))
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        score += f1 * support
        total += support
    return score / total


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """``np.corrcoef(x, y)[0, 1]``, NaN (without a warning) when either side is constant or there are < 2 samples."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.corrcoef(x, y)[0, 1])


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, classes: tuple | list) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class, in the order of ``classes``. -> (C, C) int64."""
    truth, pred = np.asarray(truth).reshape(-1), np.asarray(pred).reshape(-1)
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truth.tolist(), pred.tolist()):
        matrix[index[t], index[p]] += 1
    return matrix


def sentiment_classes(values: np.ndarray) -> np.ndarray:
    """The Acc7 class of each score: clip to [-3, 3], round half to even. (N,) float -> (N,) int64 in -3..3."""
    return np.round(np.clip(np.asarray(values, dtype=np.float64), -3.0, 3.0)).astype(np.int64)


def sentiment_metrics(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MOSI / MOSEI metrics of regression outputs. preds, labels: (N,) or (N, 1) scores in about [-3, 3]."""
    preds = np.asarray(preds, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    assert preds.shape == labels.shape, f"{preds.shape[0]} predictions for {labels.shape[0]} labels"
    non0 = labels != 0
    return {
        "mae": float(np.mean(np.abs(preds - labels))) if labels.size else math.nan,
        "corr": pearson(preds, labels),
        "acc7": multiclass_acc(np.clip(preds, -3.0, 3.0), np.clip(labels, -3.0, 3.0)),
        "acc5": multiclass_acc(np.clip(preds, -2.0, 2.0), np.clip(labels, -2.0, 2.0)),
        "acc2_non0": accuracy(labels[non0] > 0, preds[non0] > 0),
        "f1_non0": weighted_f1(labels[non0] > 0, preds[non0] > 0),
        "acc2_has0": accuracy(labels >= 0, preds >= 0),
        "f1_has0": weighted_f1(labels >= 0, preds >= 0),
    }


def iemocap_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Per emotion binary accuracy and weighted F1, and their means.

    logits: (N, 4, 2) scores (or (N, 8)); labels: (N, 4) 0/1, or one-hot (N, 4, 2); both in IEMOCAP_EMOTIONS order.
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1, 4, 2)
    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels.argmax(-1)
    labels = labels.reshape(-1, 4).astype(np.int64)
    assert len(logits) == len(labels), f"{len(logits)} predictions for {len(labels)} labels"
    pred = logits.argmax(-1)  # (N, 4)
    out: dict[str, float] = {}
    for k, emotion in enumerate(IEMOCAP_EMOTIONS):
        out[f"{emotion}_acc"] = accuracy(labels[:, k], pred[:, k])
        out[f"{emotion}_f1"] = weighted_f1(labels[:, k], pred[:, k])
    out["mean_acc"] = float(np.mean([out[f"{e}_acc"] for e in IEMOCAP_EMOTIONS]))
    out["mean_f1"] = float(np.mean([out[f"{e}_f1"] for e in IEMOCAP_EMOTIONS]))
    return out


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and weighted F1 of class scores. logits: (N, C); labels: (N,) ints in [0, C)."""
    pred = np.asarray(logits).argmax(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    return {"acc": accuracy(labels, pred), "f1": weighted_f1(labels, pred)}


def compute_metrics(task: str, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The metrics of ``task`` (``regression`` | ``iemocap`` | ``classification``) from raw model outputs."""
    if task == "regression":
        return sentiment_metrics(outputs, labels)
    if task == "iemocap":
        return iemocap_metrics(outputs, labels)
    if task == "classification":
        return classification_metrics(outputs, labels)
    raise ValueError(f"unknown task {task!r}: expected regression, iemocap or classification")


def confusion(task: str, outputs: np.ndarray, labels: np.ndarray) -> dict:
    """Confusion matrices for the report: ``{"classes": [...], "matrix": (C, C)}`` per name.

    regression: the seven Acc7 classes; iemocap: one 2x2 matrix per emotion; classification: C x C.
    """
    if task == "regression":
        classes = list(SENTIMENT_CLASSES)
        m = confusion_matrix(sentiment_classes(labels), sentiment_classes(np.asarray(outputs).reshape(-1)), classes)
        return {"acc7": {"classes": classes, "matrix": m.tolist()}}
    if task == "iemocap":
        logits = np.asarray(outputs).reshape(-1, 4, 2)
        labels = np.asarray(labels)
        labels = (labels.argmax(-1) if labels.ndim == 3 else labels).reshape(-1, 4)
        return {e: {"classes": [0, 1], "matrix": confusion_matrix(labels[:, k], logits[:, k].argmax(-1), [0, 1]).tolist()}
                for k, e in enumerate(IEMOCAP_EMOTIONS)}
    logits = np.asarray(outputs)
    classes = list(range(logits.shape[-1]))
    return {"classification": {"classes": classes,
                        "matrix": confusion_matrix(np.asarray(labels).reshape(-1), logits.argmax(-1), classes).tolist()}}


def jsonable(metrics: dict) -> dict:
    """The dict with NaN / inf floats replaced by None, so it is strict JSON."""
    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return float(v) if math.isfinite(v) else None
        if isinstance(v, np.integer):
            return int(v)
        return v
    return fix(metrics)
