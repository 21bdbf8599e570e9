"""The project's Parquet feature store as training data: labelled segments as :class:`~pipeline.datasets.ArraySplit`.

Unaligned: :class:`pipeline.views.SegmentDataset` (words, acoustic and visual frames inside each segment's time
window). Word-aligned: :func:`pipeline.views.word_aligned` (frames averaged over each word, as the benchmarks'
P2FA-aligned releases). Segments are grouped by their ``split`` column; those without one form the split ``"all"``.
Numeric labels make a regression task; text labels (``"happy"``...) a classification over their sorted names.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.datasets import ArraySplit, pad_sequences

STORE_MODALITIES = {"text": "language", "vision": "visual", "audio": "acoustic"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _labels(values: list, where: str) -> tuple[np.ndarray, str, list[str] | None]:
    """(labels, task, class names) from a list of label values (NaN / None = unlabelled, already dropped)."""
    if all(_is_number(v) for v in values):
        return np.asarray(values, np.float32), "regression", None
    if all(isinstance(v, str) for v in values):
        classes = sorted(set(values))
        return np.asarray([classes.index(v) for v in values], np.int64), "classification", classes
    raise ValueError(f"{where}: [load] labels mix numbers and text; give one kind per label column")


def _labelled(value) -> bool:
    if value is None:
        return False
    if _is_number(value):
        return not math.isnan(float(value))
    return isinstance(value, str) and value != ""


def store_splits(path: str | Path, *, aligned: bool = False, max_len: int | None = None,
                 label: str = "label") -> dict[str, ArraySplit]:
    """Every labelled segment of the store at ``path``, by split.

    aligned: the word-aligned view (all three modalities follow the words) instead of the unaligned sequences.
    max_len: longest sequence kept per modality (the first steps); None keeps the views' defaults (unaligned:
        language 50, acoustic 375, visual 500) or whole segments (aligned).
    label: the segments' label column.
    """
    from pipeline.store import FeatureStore

    store = FeatureStore(path)
    segments = store.segments()
    if segments.empty:
        raise ValueError(f"{path}: [load] the store has no segments (run `mcr extract` with a manifest)")
    if label not in segments.columns:
        raise ValueError(f"{path}: [load] segments.parquet has no {label!r} column to train on")
    records = _aligned_records(store, segments, label, max_len) if aligned else \
        unaligned_records(store, segments, label, max_len)
    if not records:
        raise ValueError(f"{path}: [load] no segment has both a {label!r} label and features")
    labels, task, classes = _labels([r["label"] for r in records], str(path))
    arrays = {m: pad_sequences([r[m] for r in records], max_len) for m in STORE_MODALITIES}
    whole = ArraySplit(*(arrays[m][0] for m in STORE_MODALITIES), *(arrays[m][1] for m in STORE_MODALITIES),
                       labels=labels, ids=[r["segment_id"] for r in records], task=task,
                       video_ids=[r["video_id"] for r in records], classes=classes)
    names = np.asarray([r["split"] or "all" for r in records])
    return {name: whole.subset(names == name) for name in dict.fromkeys(names.tolist())}


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(x, np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def unaligned_records(store, segments, label: str | None, max_len: int | None) -> list[dict]:
    """One record per segment of ``segments`` (only the labelled ones when ``label`` names a column): its real
    steps per modality (``text``/``vision``/``audio``, (T_real, d), non-finite values zeroed), ``label``,
    ``segment_id``, ``video_id``, ``split`` and ``transcript``."""
    from pipeline.views import SegmentDataset

    missing = [m for m in STORE_MODALITIES.values() if not store.stream_video_ids(m)]
    if missing:
        raise ValueError(f"{store.url}: [load] the store has no {', '.join(missing)} stream; MCR needs all three")
    limits = None if max_len is None else {m: max_len for m in STORE_MODALITIES.values()}
    dataset = SegmentDataset(store, max_len=limits, label=label, modalities=tuple(STORE_MODALITIES.values()),
                             segments=segments)
    records = []
    for i in range(len(dataset)):
        if label is not None and not _labelled(dataset.segments.iloc[i][label]):
            continue
        item = dataset[i]
        value = item["label"]
        record = {"label": float(value) if hasattr(value, "item") else value, "segment_id": item["segment_id"],
                  "video_id": item["video_id"], "split": item["split"], "transcript": item["transcript"]}
        for key, m in STORE_MODALITIES.items():
            record[key] = _finite(item[m].numpy()[item[f"{m}_mask"].numpy()])  # (T_real, d)
        records.append(record)
    return records


def _aligned_records(store, segments, label: str, max_len: int | None) -> list[dict]:
    from pipeline.views import word_aligned

    table = word_aligned(store, modalities=("acoustic", "visual")).to_pandas()
    by_segment = dict(tuple(table.groupby(["video_id", "segment_id"], sort=False)))
    records = []
    for seg in segments.itertuples(index=False):
        value = getattr(seg, label)
        rows = by_segment.get((seg.video_id, seg.segment_id))
        if rows is None or not _labelled(value):
            continue
        rows = rows.sort_values("word_index")
        record = {"label": value, "segment_id": seg.segment_id, "video_id": seg.video_id,
                  "split": seg.split if isinstance(seg.split, str) else None}
        for key, m in STORE_MODALITIES.items():
            record[key] = _finite(np.stack(rows[m].to_numpy()))  # (words, d)
        records.append(record)
    return records
