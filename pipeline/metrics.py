"""The benchmarks' metrics, computed exactly as the reference implementations do.

Sentiment (MOSI / MOSEI, labels in [-3, 3]) follows MulT's ``eval_mosei_senti`` and MMSA's ``MetricsTop``:

- ``mae``: mean absolute error; ``corr``: Pearson correlation (MulT's ``np.corrcoef``, here ``scipy.stats.pearsonr``;
  NaN when either side is constant);
- ``acc7``: clip predictions and labels to [-3, 3], round both half to even (``np.round``), share of equal classes;
  ``acc5``: the same with [-2, 2];
- ``acc2_non0`` / ``f1_non0``: zero labels left out, positive means ``> 0`` (the paper's Acc2 and F1);
- ``f1_non0_mult``: the same F1 as MulT's code computes it (see below);
- ``acc2_has0`` / ``f1_has0``: all samples, positive means ``>= 0`` (MMSA's "Has0").

F1 is scikit-learn's ``f1_score(truth, pred, average="weighted")``: per-class F1 averaged with the class supports of
the truth as weights, a class never predicted scoring 0. MMSA passes (truth, pred) in that order (``f1_non0``);
MulT's ``eval_mosei_senti`` calls ``f1_score(pred, truth)``, which weights by the predicted supports instead
(``f1_non0_mult``). Both are reported; docs/model.md says which one the paper's numbers follow.

IEMOCAP follows MulT's ``eval_iemocap``: per emotion, argmax of the two logits against the 0/1 label, binary accuracy
and weighted F1 (and, as for every classification, unweighted accuracy and macro F1; see below). The emotion order
is the project's (``pipeline.arrays.IEMOCAP_EMOTIONS``): happy, sad, angry, neutral; MulT's ``iemocap_data.pkl``
stores neutral, happy, sad, angry and :mod:`pipeline.benchmark_files` reorders it.

Classification (one class per sample, e.g. RAVDESS's eight emotions) reports ``acc`` and weighted ``f1`` as the
benchmarks do, and the figures of the emotion-recognition literature that do not reward predicting the frequent
classes: ``unweighted_accuracy`` (UA: the recall of each class of the truth, averaged with equal weights; equal to
scikit-learn's ``balanced_accuracy_score``) and ``macro_f1`` (per-class F1 averaged with equal weights over the
classes of the truth and the predictions).

Accuracy, F1, MAE and the confusion matrices are scikit-learn's, the correlation SciPy's; the wrappers only add what
the references do and the libraries do not: NaN (not an exception) for no samples or a diverged model's NaN
outputs, rounding and clipping to the sentiment classes, and a silent NaN correlation for constant inputs.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from pipeline.arrays import IEMOCAP_EMOTIONS

SENTIMENT_CLASSES = tuple(range(-3, 4))  # the seven classes of Acc7


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")


def multiclass_acc(preds: np.ndarray, truths: np.ndarray) -> float:
    """Share of samples whose rounded (half to even) prediction equals the rounded truth. (N,), (N,) -> float."""
    preds, truths = np.asarray(preds, dtype=np.float64), np.asarray(truths, dtype=np.float64)
    _same_shape(preds, truths)
    if truths.size == 0:
        return math.nan
    # numpy, not accuracy_score: scikit-learn raises on NaN predictions (a diverged model); here they count as wrong
    return float(np.mean(np.round(preds) == np.round(truths)))


def accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """Share of equal entries; NaN for no samples."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    _same_shape(truth, pred)
    return float(skm.accuracy_score(truth.reshape(-1), pred.reshape(-1))) if truth.size else math.nan


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's ``f1_score(truth, pred, average="weighted")`` (with ``zero_division=0``); NaN for no samples.

    The classes are the union of those in ``truth`` and ``pred``; each class's F1 is weighted by its support in
    ``truth``, so a class that only appears in ``pred`` lowers the others' precision but has weight 0.
    """
    truth, pred = np.asarray(truth).reshape(-1), np.asarray(pred).reshape(-1)
    _same_shape(truth, pred)
    if truth.size == 0:
        return math.nan
    return float(skm.f1_score(truth, pred, average="weighted", zero_division=0))


def unweighted_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted accuracy (macro recall): the recall of each class present in ``truth``, averaged with equal
    weights; NaN for no samples. A class that is only predicted lowers the others' recall, not the average's size."""
    truth, pred = np.asarray(truth).reshape(-1), np.asarray(pred).reshape(-1)
    _same_shape(truth, pred)
    if truth.size == 0:
        return math.nan
    return float(skm.recall_score(truth, pred, labels=np.unique(truth), average="macro", zero_division=0))


def macro_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's ``f1_score(truth, pred, average="macro")`` (``zero_division=0``): per-class F1 over the union of
    the classes of ``truth`` and ``pred``, averaged with equal weights; NaN for no samples."""
    truth, pred = np.asarray(truth).reshape(-1), np.asarray(pred).reshape(-1)
    _same_shape(truth, pred)
    if truth.size == 0:
        return math.nan
    return float(skm.f1_score(truth, pred, average="macro", zero_division=0))


def class_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``acc``, weighted ``f1``, ``unweighted_accuracy`` and ``macro_f1`` of class predictions. (N,), (N,) ints."""
    return {"acc": accuracy(truth, pred), "f1": weighted_f1(truth, pred),
            "unweighted_accuracy": unweighted_accuracy(truth, pred), "macro_f1": macro_f1(truth, pred)}


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r (``scipy.stats.pearsonr``), NaN without a warning when either side is constant or < 2 samples."""
    x, y = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    _same_shape(x, y)
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    with warnings.catch_warnings():  # NaN inputs or near-constant ones: the value (maybe NaN) is the answer
        warnings.simplefilter("ignore")
        return float(stats.pearsonr(x, y).statistic)


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, classes: tuple | list) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class, in the order of ``classes``. -> (C, C) int64."""
    truth, pred = np.asarray(truth).reshape(-1), np.asarray(pred).reshape(-1)
    _same_shape(truth, pred)
    unknown = np.setdiff1d(np.union1d(truth, pred), np.asarray(classes))
    if unknown.size:  # scikit-learn would silently leave these samples out
        raise ValueError(f"values {unknown.tolist()} are not among the classes {list(classes)}")
    if truth.size == 0:  # scikit-learn refuses empty inputs
        return np.zeros((len(classes), len(classes)), dtype=np.int64)
    return skm.confusion_matrix(truth, pred, labels=list(classes)).astype(np.int64)


def sentiment_classes(values: np.ndarray) -> np.ndarray:
    """The Acc7 class of each score: clip to [-3, 3], round half to even. (N,) float -> (N,) int64 in -3..3."""
    return np.round(np.clip(np.asarray(values, dtype=np.float64), -3.0, 3.0)).astype(np.int64)


def _mae(labels: np.ndarray, preds: np.ndarray) -> float:
    # scikit-learn raises on NaN / inf; those (and no samples) score NaN, as MulT's np.mean(np.abs(...)) gives
    if labels.size == 0 or not (np.isfinite(labels).all() and np.isfinite(preds).all()):
        return math.nan
    return float(skm.mean_absolute_error(labels, preds))


def sentiment_metrics(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MOSI / MOSEI metrics of regression outputs. preds, labels: (N,) or (N, 1) scores in about [-3, 3]."""
    preds = np.asarray(preds, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if preds.shape != labels.shape:
        raise ValueError(f"{preds.shape[0]} predictions for {labels.shape[0]} labels")
    non0 = labels != 0
    return {
        "mae": _mae(labels, preds),
        "corr": pearson(preds, labels),
        "acc7": multiclass_acc(np.clip(preds, -3.0, 3.0), np.clip(labels, -3.0, 3.0)),
        "acc5": multiclass_acc(np.clip(preds, -2.0, 2.0), np.clip(labels, -2.0, 2.0)),
        "acc2_non0": accuracy(labels[non0] > 0, preds[non0] > 0),
        "f1_non0": weighted_f1(labels[non0] > 0, preds[non0] > 0),
        "f1_non0_mult": weighted_f1(preds[non0] > 0, labels[non0] > 0),  # MulT's argument order
        "acc2_has0": accuracy(labels >= 0, preds >= 0),
        "f1_has0": weighted_f1(labels >= 0, preds >= 0),
    }


def iemocap_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Per emotion ``<emotion>_acc``, ``_f1`` (weighted), ``_unweighted_accuracy`` and ``_macro_f1`` of the binary
    present / absent decision, and their means (``mean_acc``, ``mean_f1``...).

    logits: (N, 4, 2) scores (or (N, 8)); labels: (N, 4) 0/1, or one-hot (N, 4, 2); both in IEMOCAP_EMOTIONS order.
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1, 4, 2)
    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels.argmax(-1)
    labels = labels.reshape(-1, 4).astype(np.int64)
    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} predictions for {len(labels)} labels")
    pred = logits.argmax(-1)  # (N, 4)
    per_emotion = {e: class_metrics(labels[:, k], pred[:, k]) for k, e in enumerate(IEMOCAP_EMOTIONS)}
    out = {f"{e}_{name}": value for e, values in per_emotion.items() for name, value in values.items()}
    for name in ("acc", "f1", "unweighted_accuracy", "macro_f1"):
        out[f"mean_{name}"] = float(np.mean([per_emotion[e][name] for e in IEMOCAP_EMOTIONS]))
    return out


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """:func:`class_metrics` of class scores. logits: (N, C); labels: (N,) ints in [0, C)."""
    return class_metrics(np.asarray(labels).reshape(-1).astype(np.int64), np.asarray(logits).argmax(-1))


def compute_metrics(task: str, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The metrics of ``task`` (``regression`` | ``iemocap`` | ``classification``) from raw model outputs."""
    if task == "regression":
        return sentiment_metrics(outputs, labels)
    if task == "iemocap":
        return iemocap_metrics(outputs, labels)
    if task == "classification":
        return classification_metrics(outputs, labels)
    raise ValueError(f"unknown task {task!r}: expected regression, iemocap or classification")


def confusion(task: str, outputs: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None) -> dict:
    """Confusion matrices for the report: ``{"classes": [...], "matrix": (C, C)}`` per name.

    regression: the seven Acc7 classes; iemocap: one 2x2 matrix per emotion; classification: C x C, its classes
    named by ``class_names`` (the run's, e.g. emotion names) when given, else 0..C-1.
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
    matrix = confusion_matrix(np.asarray(labels).reshape(-1), logits.argmax(-1), classes).tolist()
    if class_names is not None:
        if len(class_names) != len(classes):
            raise ValueError(f"{len(class_names)} class names for {len(classes)} outputs")
        classes = [str(name) for name in class_names]
    return {"classification": {"classes": classes, "matrix": matrix}}


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
