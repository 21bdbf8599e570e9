"""Baselines of a grouped cross-validation on a store: a linear probe of one pooled stream, and the majority class.

The probe pools each segment's frames of one stream (mean, std, 10th and 90th percentile of every feature: a
(4 d,) vector per segment) and fits scikit-learn's logistic regression on the standardised vectors of the training
groups; the majority class predicts the training groups' most frequent label. Both use the folds they are given
(``block_folds``, or the test groups of an ``mcr train --cv`` run), so they are compared with MCR on the same clips.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline import metrics as M
from pipeline.store import FeatureStore
from pipeline.views import SegmentDataset

POOLS = ("mean", "std", "p10", "p90")
MAX_FRAMES = 6000  # one minute of 100-Hz frames: longer segments are pooled over their first minute


@dataclass
class PooledStream:
    """One pooled vector per labelled segment of a store."""

    features: np.ndarray  # (N, 4 d): mean, std, p10, p90 of each of the stream's d features
    labels: np.ndarray  # (N,) label names
    groups: np.ndarray  # (N,) the grouping column's values, as strings
    extractor: str  # the stream's extractor name, as the store records it


def group_name(value) -> str:
    """A group value as text: ``3.0`` (a number read back from Parquet) -> ``"3"``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def pool_frames(frames: np.ndarray) -> np.ndarray:
    """(T, d) frames -> (4 d,) [mean, std, p10, p90]; NaN features (e.g. F0 of unvoiced frames) are left out of
    their statistic, and a statistic with no finite frame is 0."""
    frames = np.asarray(frames, np.float64)
    if not len(frames) or not np.isfinite(frames).any():
        return np.zeros(4 * frames.shape[1], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: its statistics become 0 below
        stats = [np.nanmean(frames, 0), np.nanstd(frames, 0), *np.nanpercentile(frames, [10, 90], axis=0)]
    return np.nan_to_num(np.concatenate(stats), nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def pooled_stream(store: str, *, modality: str = "acoustic", group_by: str, label: str = "label") -> PooledStream:
    """Every labelled segment of ``store`` as the pooled vector of its ``modality`` frames inside the segment."""
    fs = FeatureStore(store)
    segments = fs.segments()
    for column in (label, group_by):
        if column not in segments.columns:
            raise ValueError(f"{store}: [probe] the store's segments have no {column!r} column")
    segments = segments[segments[label].notna()].reset_index(drop=True)
    dataset = SegmentDataset(fs, max_len={modality: MAX_FRAMES}, label=label, modalities=(modality,),
                             segments=segments)
    features = []
    for i in range(len(dataset)):
        item = dataset[i]
        features.append(pool_frames(item[modality].numpy()[item[f"{modality}_mask"].numpy()]))
    ids = fs.stream_video_ids(modality)
    extractor = fs.stream_metadata(modality, ids[0]).get("extractor", "?") if ids else "?"
    return PooledStream(np.stack(features), segments[label].astype(str).to_numpy(),
                        np.asarray([group_name(g) for g in segments[group_by]]), extractor)


def block_folds(groups, k: int) -> list[list[str]]:
    """The groups cut into ``k`` folds of consecutive groups in sorted order (numbers sorted as numbers): 24 actors
    and k = 6 give actors 1-4, 5-8, ..., 21-24."""
    names = sorted(set(map(str, groups)), key=lambda g: (0, float(g), g) if _is_number(g) else (1, 0.0, g))
    if len(names) < k:
        raise ValueError(f"{len(names)} groups cannot make {k} folds")
    return [list(block) for block in np.array_split(np.asarray(names, object), k)]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def label_metrics(truth, pred, classes: list[str]) -> dict:
    """Accuracy, unweighted accuracy (mean recall over the classes of the truth) and macro-F1 of label names, as
    :mod:`pipeline.metrics` defines them for MCR, and the confusion matrix (rows: truth) over ``classes``."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    return {"accuracy": M.accuracy(truth, pred), "unweighted_accuracy": M.unweighted_accuracy(truth, pred),
            "macro_f1": M.macro_f1(truth, pred),
            "confusion": {"classes": list(classes), "matrix": M.confusion_matrix(truth, pred, classes).tolist()}}


def cross_validate(data: PooledStream, folds: list[list[str]], *, model: str = "probe", c: float = 1.0,
                   seed: int = 0) -> dict:
    """Pooled test metrics over ``folds`` (lists of test groups; every other group trains), per-fold metrics and the
    training seconds. model: ``probe`` (logistic regression, inverse regularisation ``c``) or ``majority``."""
    classes = sorted(set(data.labels))
    pred = np.empty(len(data.labels), object)
    tested = np.zeros(len(data.labels), bool)
    per_fold, seconds = [], 0.0
    for k, test_groups in enumerate(folds):
        test = np.isin(data.groups, [str(g) for g in test_groups])
        train = ~test
        started = time.perf_counter()
        if model == "majority":
            values, counts = np.unique(data.labels[train], return_counts=True)
            pred[test] = values[counts.argmax()]
        else:
            fitted = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
            fitted.fit(data.features[train], data.labels[train])
            pred[test] = fitted.predict(data.features[test])
        seconds += time.perf_counter() - started
        tested |= test
        fold = label_metrics(data.labels[test], pred[test], classes)
        per_fold.append({"fold": k, "test_groups": list(test_groups), "n_test": int(test.sum()),
                         **{key: v for key, v in fold.items() if key != "confusion"}})
    if not tested.all():
        raise ValueError(f"[probe] {int((~tested).sum())} segments are in no test fold: the folds name groups "
                         f"{sorted({g for f in folds for g in f})}, the data has {sorted(set(data.groups))}")
    return {"pooled": label_metrics(data.labels, pred.astype(str), classes), "folds": per_fold, "seconds": seconds,
            "classes": classes}

