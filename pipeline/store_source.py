"""The project's Parquet feature store as training data: segments as records, records as an :class:`ArraySplit`.

Unaligned: :class:`pipeline.views.SegmentDataset` (words, acoustic and visual frames inside each segment's time
window). Word-aligned: :func:`pipeline.views.word_aligned` (frames averaged over each word, as the benchmarks'
P2FA-aligned releases). Segments are grouped by their ``split`` column; those without one form the split ``"all"``.
Numeric labels make a regression task; text labels (``"happy"``...) a classification over their sorted names.
Prediction uses the same records (:func:`segment_records` with ``label=None``) and the same builder
(:func:`pipeline.arrays.split_from_records`).

Placeholder labels: a manifest column ``placeholder_labels`` with a true value (1, ``true``, ``yes``) on its rows says
that the labels are not real (the demo's random scores); :func:`label_provenance` reads it from the store, for a
run to record it and for ``mcr predict`` to warn.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.arrays import MODALITIES, ArraySplit, is_labelled, split_from_records
from pipeline.store import FeatureStore


PLACEHOLDER_COLUMN = "placeholder_labels"
_TRUE = {"1", "1.0", "true", "yes", "y"}


def label_provenance(source: str | Path | FeatureStore | None) -> dict[str, bool]:
    """``{"placeholder_labels": bool}`` of a training source: True when the store's segments carry a true
    ``placeholder_labels`` on any row. False for a source that is not a store (pickles, Parquet) or cannot be read."""
    try:
        store = source if isinstance(source, FeatureStore) else FeatureStore(source) if source else None
        segments = store.segments() if store is not None and store.fs.exists(store.path("segments.parquet")) else None
    except (OSError, ValueError):
        segments = None
    if segments is None or PLACEHOLDER_COLUMN not in segments.columns:
        return {"placeholder_labels": False}
    flags = segments[PLACEHOLDER_COLUMN].dropna().astype(str).str.strip().str.lower()
    return {"placeholder_labels": bool(flags.isin(_TRUE).any())}


def store_description(source: str | Path | FeatureStore | None) -> dict:
    """What a run records of the store it trains on: the ``rates`` of its streams with a fixed frame shift, in steps
    per second (``{"acoustic": 100.0, "visual": 10.0}``; words have none), the
    ``extractors`` that made the streams, each with its config as its stream files record it (the first video's:
    ``{"acoustic": {"name": "whisper-encoder", "config": {"hop": 0.04, ...}, "config_hash": "8060ba4d..."}}``), so
    that `mcr predict` extracts new videos exactly as the model's inputs were, and
    :func:`label_provenance`; empty for a source that is not a store (a benchmark file, or None)."""
    rates, extractors = {}, {}
    try:
        store = source if isinstance(source, FeatureStore) else FeatureStore(source) if source else None
        for m in MODALITIES if store is not None else ():
            meta = store.stream_metadata(m)  # one schema read per stream
            shift = meta.get("frame_shift")
            if shift not in (None, "null") and float(shift) > 0:
                rates[m] = 1.0 / float(shift)
            if meta.get("extractor"):
                extractors[m] = {"name": meta["extractor"], "config": json.loads(meta.get("config") or "{}"),
                                 "config_hash": meta.get("config_hash")}
    except (OSError, ValueError):  # json's errors are ValueErrors too
        rates, extractors = {}, {}
    return {"rates": rates, "extractors": extractors, **label_provenance(source)}


def store_splits(path: str | Path, *, aligned: bool = False, max_len: int | None = None,
                 label: str = "label") -> dict[str, ArraySplit]:
    """Every labelled segment of the store at ``path``, by split.

    aligned: the word-aligned view (all three modalities follow the words) instead of the unaligned sequences.
    max_len: longest sequence kept per modality (the first steps); None keeps the views' defaults (unaligned:
        language 50, acoustic 375, visual 500) or whole segments (aligned).
    label: the segments' label column.
    """
    store = FeatureStore(path)
    segments = store.segments()
    if segments.empty:
        raise ValueError(f"{path}: [load] the store has no segments; extract it from a manifest with segments "
                         "(mcr extract manifest.csv --store ...)")
    if label not in segments.columns:
        raise ValueError(f"{path}: [load] the store's segments have no {label!r} column to train on; give the "
                         f"manifest a {label!r} column and extract again (already extracted videos are skipped)")
    records = _aligned_records(store, segments, label, max_len) if aligned else \
        segment_records(store, segments, label=label, max_len=max_len)
    if not records:
        raise ValueError(f"{path}: [load] no segment has both a {label!r} label and features")
    try:
        whole = split_from_records(records, max_len=max_len)
    except ValueError as exc:
        raise ValueError(f"{path}: [load] {exc}") from None
    names = np.asarray([r["split"] or "all" for r in records])
    return {name: whole.subset(names == name) for name in dict.fromkeys(names.tolist())}


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(x, np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def segment_records(store: FeatureStore, segments: pd.DataFrame, *, label: str | None = None,
                    max_len: int | None = None) -> list[dict]:
    """One record per segment of ``segments`` (only the labelled ones when ``label`` names a column).

    A record holds the real steps of each modality (``language``/``visual``/``acoustic``: (T_real, d), non-finite
    values zeroed), ``label``, ``segment_id``, ``video_id``, ``split`` and ``transcript``. A ``face_id`` column of
    ``segments`` names the face each segment serves; -1 (no face) leaves the segment without visual steps, so the
    model masks that modality.
    """
    from pipeline.views import SegmentDataset

    missing = [m for m in MODALITIES if not store.stream_video_ids(m)]
    if missing:
        raise ValueError(f"{store.url}: [load] the store has no {', '.join(missing)} stream; MCR needs all three")
    limits = None if max_len is None else {m: max_len for m in MODALITIES}
    dataset = SegmentDataset(store, max_len=limits, label=label, modalities=MODALITIES, segments=segments)
    records = []
    for i in range(len(dataset)):
        if label is not None and not is_labelled(dataset.segments.iloc[i][label]):
            continue
        item = dataset[i]
        value = item["label"]
        record = {"label": float(value) if hasattr(value, "item") else value, "segment_id": item["segment_id"],
                  "video_id": item["video_id"], "split": item["split"], "transcript": item["transcript"]}
        for m in MODALITIES:
            record[m] = _finite(item[m].numpy()[item[f"{m}_mask"].numpy()])  # (T_real, d)
        if _no_face(dataset.segments.iloc[i].get("face_id")):
            record["visual"] = record["visual"][:0]
        records.append(record)
    return records


def _no_face(face_id) -> bool:
    try:
        return face_id is not None and not pd.isna(face_id) and int(face_id) < 0
    except (TypeError, ValueError):
        return False


def _aligned_records(store: FeatureStore, segments: pd.DataFrame, label: str, max_len: int | None) -> list[dict]:
    from pipeline.views import word_aligned

    table = word_aligned(store, modalities=("acoustic", "visual")).to_pandas()
    by_segment = dict(tuple(table.groupby(["video_id", "segment_id"], sort=False)))
    records = []
    for seg in segments.itertuples(index=False):
        value = getattr(seg, label)
        rows = by_segment.get((seg.video_id, seg.segment_id))
        if rows is None or not is_labelled(value):
            continue
        rows = rows.sort_values("word_index")
        record = {"label": value, "segment_id": seg.segment_id, "video_id": seg.video_id,
                  "split": seg.split if isinstance(seg.split, str) else None}
        for m in MODALITIES:
            record[m] = _finite(np.stack(rows[m].to_numpy()))  # (words, d)
        records.append(record)
    return records
