"""CMU-MultimodalSDK files: computational sequences (``.csd``, HDF5) of labels, and the standard folds.

A ``.csd`` file holds one top-level group (the sequence's root name, e.g. ``Opinion Segment Labels``) with
``data/<video_id>/features`` (N, d) and ``data/<video_id>/intervals`` (N, 2: start and end seconds in the full
video) and ``metadata``. Row ``i`` of a video is its segment ``<video_id>[i]``, the key the SDK's alignment gives.
The standard folds are lists of video ids in ``cmu_mosi_std_folds.py`` / ``cmu_mosei_std_folds.py``
(``standard_train_fold``, ``standard_valid_fold``, ``standard_test_fold``), or a JSON object
``{"train": [...], "valid": [...], "test": [...]}``.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.recipes.common import find_one, read_csv

KEY_COLUMNS = ("video_id", "seg_index", "segment_id", "start", "end", "split")
FOLD_NAMES = {"standard_train_fold": "train", "standard_valid_fold": "valid", "standard_test_fold": "test"}


@dataclass
class LabelledSegment:
    video_id: str
    segment_id: str
    start: float
    end: float
    labels: dict[str, Any] = field(default_factory=dict)
    split: str | None = None


def read_csd(path: Path, names: tuple[str, ...]) -> list[LabelledSegment]:
    """Label rows of a ``.csd`` file; ``names`` name the feature columns (their count is checked)."""
    try:
        import h5py
    except ImportError:
        raise ValueError(f"{path}: [prepare] reading .csd files needs h5py (pip install h5py); or pass "
                         "--labels FILE.json/.csv") from None
    segments = []
    with h5py.File(path, "r") as f:
        roots = [f[k] for k in f.keys() if isinstance(f[k], h5py.Group) and "data" in f[k]]
        if not roots:
            raise ValueError(f"{path}: [prepare] not a computational sequence (no <root>/data group)")
        data = roots[0]["data"]
        for vid in sorted(data.keys()):
            features, intervals = data[vid]["features"][()], data[vid]["intervals"][()]
            if features.ndim != 2 or features.shape[1] != len(names) or len(intervals) != len(features):
                raise ValueError(f"{path}: [prepare] {vid}: expected {len(names)} label columns "
                                 f"({', '.join(names)}) per interval, got features {features.shape} and "
                                 f"intervals {intervals.shape}")
            for i, (values, (start, end)) in enumerate(zip(features, intervals)):
                segments.append(LabelledSegment(vid, f"{vid}[{i}]", float(start), float(end),
                                                {n: float(v) for n, v in zip(names, values)}))
    return segments


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value or None
    return value


def read_table(path: Path) -> list[LabelledSegment]:
    """Label rows of a JSON list of objects or a CSV: ``video_id``, ``start``, ``end``, optionally ``segment_id``
    (else ``<video_id>[seg_index]``, else by order) and ``split``; every other field is a label."""
    if path.suffix.lower() == ".json":
        records = json.loads(path.read_text())
        if isinstance(records, dict):  # {"segment_id": {...}}
            records = [{"segment_id": k, **v} for k, v in records.items()]
    else:
        records = read_csv(path)
    segments: list[LabelledSegment] = []
    count: dict[str, int] = {}
    for n, r in enumerate(records, start=1):
        missing = [k for k in ("video_id", "start", "end") if r.get(k) in (None, "")]
        if missing:
            raise ValueError(f"{path}: [prepare] record {n} has no {', '.join(missing)}; label files need "
                             "video_id, start and end (seconds in the full video)")
        vid = str(r["video_id"])
        index = r.get("seg_index")
        index = count.get(vid, 0) if index in (None, "") else int(float(index))
        count[vid] = count.get(vid, 0) + 1
        labels = {k: _number(v) for k, v in r.items() if k not in KEY_COLUMNS}
        segments.append(LabelledSegment(vid, str(r.get("segment_id") or f"{vid}[{index}]"), float(r["start"]),
                                        float(r["end"]), labels, r.get("split") or None))
    return segments


def read_labels(path: Path, names: tuple[str, ...]) -> list[LabelledSegment]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: [prepare] no such labels file")
    return read_csd(path, names) if path.suffix.lower() == ".csd" else read_table(path)


def read_folds(path: Path) -> dict[str, str]:
    """Video id -> split from the SDK's ``*_std_folds.py`` (read as data, never run) or a JSON object."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: [prepare] no such folds file")
    folds: dict[str, list[str]] = {}
    if path.suffix.lower() == ".json":
        folds = {k: list(v) for k, v in json.loads(path.read_text()).items()}
    else:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id in FOLD_NAMES:
                folds[FOLD_NAMES[node.targets[0].id]] = list(ast.literal_eval(node.value))
    if not folds:
        raise ValueError(f"{path}: [prepare] no folds found (expected standard_train_fold, standard_valid_fold, "
                         "standard_test_fold lists, or a JSON object of split -> video ids)")
    return {vid: split for split, ids in folds.items() for vid in ids}


def sdk_segments(raw_dir: Path, labels: str | Path | None, folds: str | Path | None, *, csd_name: str,
                 folds_name: str, names: tuple[str, ...]) -> list[LabelledSegment]:
    """The labelled segments of a CMU corpus: ``labels`` (else ``csd_name`` found under ``raw_dir``), with the
    split of the labels file, else of ``folds`` (else ``folds_name`` found under ``raw_dir``), else none."""
    path = Path(labels) if labels else find_one(raw_dir, csd_name)
    if path is None:
        raise FileNotFoundError(f"{raw_dir}: [prepare] no {csd_name} found; download it with CMU-MultimodalSDK "
                                "or pass --labels FILE (.csd, or .json/.csv with video_id, start, end, label)")
    segments = read_labels(path, names)
    if any(s.split for s in segments) and not folds:
        return segments
    folds_path = Path(folds) if folds else find_one(raw_dir, folds_name)
    if folds_path is not None:
        split_of = read_folds(folds_path)
        for s in segments:
            s.split = split_of.get(s.video_id)
    return segments


def full_video_rows(raw_dir: Path, segments: list[LabelledSegment], expected: str) -> list[dict[str, Any]]:
    """One row per labelled segment, cut by its interval from the full video named ``<video_id>.<ext>`` anywhere
    under ``raw_dir`` (a folder named ``Full`` wins a tie); an absent video gets the path ``expected/<id>.mp4``,
    so that it is reported missing."""
    from pipeline.recipes.common import by_stem, media_files, row

    videos = by_stem(media_files(raw_dir), prefer="Full")
    rows = []
    for s in segments:
        labels = dict(s.labels)
        if "label" not in labels and "sentiment" in labels:
            labels = {"label": labels.pop("sentiment"), **labels}
        path = videos.get(s.video_id, raw_dir / expected / f"{s.video_id}.mp4")
        rows.append(row(path, s.segment_id, start=max(0.0, s.start), end=s.end, split=s.split, **labels))
    return rows
