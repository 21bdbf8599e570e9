"""Attach or change the labels, segments and splits of videos already extracted: no re-extraction.

MANIFEST is a manifest CSV (as `mcr extract` reads, or `mcr prepare` writes); a row may give `video_id` without
`path`. A row's video is its `video_id`, else the video of the store recorded with that path, else the id of the
file's name by the folder scan's rule (`clips/a b.mp4` -> `a_b`), else that of the manifest's path as
`mcr extract` derives it. Every video must be in the store (videos.parquet or a stream), else nothing is written
(or, with --skip-unknown, those rows are left out). The named videos' segments in segments.parquet are replaced
by the manifest's rows: `start`, `end`, `segment_id`, `split` and the labels. A row that names an existing
`segment_id` without times keeps its times, and without a `split` column the existing splits are kept. Other
videos are untouched; label columns no segment uses any more are dropped. `mcr train --data STORE` then trains on
the new labels.

Examples:
  mcr label store/ labels.csv                   # video_id,label  or  path,start,end,split,label,...
  mcr label store/ iemocap.csv --dry-run        # what would change
  mcr prepare crema-d ~/CREMA-D --out c.csv --split actors && mcr label store/ c.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.corpus import MANIFEST_COLUMNS, _label, _number, check_segment_id, read_csv, video_id_from_path
from pipeline.store import SEGMENT_COLUMNS, FeatureStore, check_video_id

HELP = "Attach or change the labels, segments and splits of extracted videos (no re-extraction)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="STORE", help="the feature store (folder or fsspec URL)")
    p.add_argument("manifest", metavar="MANIFEST", help="manifest CSV: path or video_id, then segments and labels")
    p.add_argument("--skip-unknown", action="store_true",
                   help="leave out the rows of videos the store does not have (default: an error)")
    p.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")


def open_store(url: str) -> FeatureStore:
    from workflows.cluster import absolute

    store = FeatureStore(absolute(url))
    if not store.fs.exists(store.path("videos.parquet")) and not store.fs.exists(store.path("segments.parquet")) \
            and not any(store.stream_video_ids(m) for m in ("language", "acoustic", "visual")):
        raise FileNotFoundError(f"{url}: [store] not a feature store (no videos.parquet, segments or streams); "
                                "extract into it first (mcr extract INPUT --store STORE)")
    return store


def store_index(store: FeatureStore) -> tuple[set[str], dict[str, str]]:
    """Ids of every video the store knows (videos.parquet, streams, segments) and source path -> id."""
    videos = store.videos()
    known = set(videos["video_id"].dropna()) | set(store.segments()["video_id"].dropna())
    for modality in ("language", "acoustic", "visual"):
        known |= set(store.stream_video_ids(modality))
    by_path = {str(p): v for p, v in zip(videos.get("path", []), videos["video_id"]) if isinstance(p, str)}
    return known, by_path


def read_rows(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: [label] no such manifest")
    fields, rows = read_csv(csv_path, "label")
    if "path" not in fields and "video_id" not in fields:
        raise ValueError(f"{csv_path}: [label] a manifest needs a 'path' or a 'video_id' column, found {fields}")
    return fields, rows


def video_of(row: dict[str, str], base: Path, known: set[str], by_path: dict[str, str], where: str) -> str:
    """The video a manifest row names (see the module's doc for the order of the rules)."""
    if (row.get("video_id") or "").strip():
        return check_video_id(row["video_id"].strip())
    raw = (row.get("path") or "").strip()
    if not raw:
        raise ValueError(f"{where}: [label] the row has neither a video_id nor a path")
    path = Path(raw)
    resolved = str(path if path.is_absolute() else (base / path).resolve())
    if resolved in by_path:
        return by_path[resolved]
    candidates = [video_id_from_path(path.name), video_id_from_path(path)]
    return next((c for c in candidates if c in known), candidates[0])


def manifest_videos(csv_path: Path, known: set[str], by_path: dict[str, str]) -> list[str]:
    """The video of each row of the manifest at ``csv_path``, in row order."""
    _, rows = read_rows(csv_path)
    return [video_of(r, csv_path.parent, known, by_path, f"{csv_path}:{i}") for i, r in enumerate(rows, start=2)]


def segment_frame(csv_path: Path, store: FeatureStore, *, skip_unknown: bool = False
                  ) -> tuple[pd.DataFrame, list[str]]:
    """The manifest's rows as segments of the store's videos, and the ids of the videos the store lacks."""
    fields, rows = read_rows(csv_path)
    known, by_path = store_index(store)
    current = store.segments()
    existing = {(r["video_id"], r["segment_id"]): r for r in current.to_dict("records")}
    labels = [c for c in fields if c not in MANIFEST_COLUMNS]
    records: list[dict[str, Any]] = []
    unknown: list[str] = []
    counts: dict[str, int] = {}
    for i, r in enumerate(rows, start=2):
        where = f"{csv_path}:{i}"
        vid = video_of(r, csv_path.parent, known, by_path, where)
        if vid not in known:
            unknown.append(vid)
            continue
        named = (r.get("segment_id") or "").strip()
        if named:
            try:
                check_segment_id(named)
            except ValueError as error:
                raise ValueError(f"{where}: [label] {error}") from None
        segment_id = named or f"{vid}_{counts.get(vid, 0)}"
        counts[vid] = counts.get(vid, 0) + 1
        old = existing.get((vid, segment_id), {}) if named else {}
        start, end = _number(r.get("start"), "start", where), _number(r.get("end"), "end", where)
        if start is None and end is None and old:
            start, end = old.get("start"), old.get("end")
            end = None if pd.isna(end) else end
        start = start or 0.0
        if end is not None and end <= start:
            raise ValueError(f"{where}: [label] segment ends ({end}) at or before it starts ({start})")
        split = (r.get("split") or None) if "split" in fields else old.get("split")
        records.append({"video_id": vid, "segment_id": segment_id, "start": float(start),
                        "end": None if end is None else float(end), "split": split if isinstance(split, str) else None,
                        **{c: _label(r[c], c, where) for c in labels if r.get(c) not in (None, "")}})
    unknown = list(dict.fromkeys(unknown))
    if unknown and not skip_unknown:
        shown = ", ".join(unknown[:5]) + (f" ... (+{len(unknown) - 5})" if len(unknown) > 5 else "")
        raise ValueError(f"{csv_path}: [label] {len(unknown)} videos are not in the store {store.url}: {shown}; "
                         "extract them first, give their video_id, or pass --skip-unknown")
    if not records:
        raise ValueError(f"{csv_path}: [label] no row names a video of the store {store.url}; nothing to label")
    frame = pd.DataFrame.from_records(records)
    return frame[SEGMENT_COLUMNS + [c for c in frame.columns if c not in SEGMENT_COLUMNS]], unknown


def merged_segments(current: pd.DataFrame, frame: pd.DataFrame, where: str = "") -> pd.DataFrame:
    """The store's segments with those of ``frame``'s videos replaced; unused label columns dropped."""
    keep = current[~current["video_id"].isin(set(frame["video_id"]))]
    merged = frame if keep.empty else pd.concat([keep, frame], ignore_index=True)
    for column in [c for c in merged.columns if c not in SEGMENT_COLUMNS]:
        values = merged[column].dropna()
        if values.empty:
            merged = merged.drop(columns=column)
            continue
        texts = values.map(lambda v: isinstance(v, str))
        if texts.any() and not texts.all():
            raise ValueError(f"{where}: [label] column {column!r} would hold text for some segments and numbers "
                             f"for others (e.g. {values[texts].iloc[0]!r} and {values[~texts].iloc[0]!r}); give one kind, or "
                             "relabel every video of the store")
    return merged


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    frame, unknown = segment_frame(Path(args.manifest), store, skip_unknown=args.skip_unknown)
    current = store.segments()
    merged = merged_segments(current, frame, args.manifest)
    videos = frame["video_id"].nunique()
    labels = [c for c in frame.columns if c not in SEGMENT_COLUMNS]
    splits = frame["split"].fillna("none").value_counts()
    before = int(current["video_id"].isin(set(frame["video_id"])).sum())
    verb = "would replace" if args.dry_run else "replaced"
    print(f"{store.url}: {verb} the {before} segments of {videos} videos by {len(frame)} segments")
    print(f"labels    : {', '.join(f'{c} {int(frame[c].notna().sum())}' for c in labels) or 'none'}")
    print(f"splits    : {', '.join(f'{k} {n}' for k, n in splits.items())}")
    if unknown:
        print(f"skipped   : {len(unknown)} videos not in the store: {', '.join(unknown[:5])}"
              + (" ..." if len(unknown) > 5 else ""))
    if not args.dry_run:
        with store.writing():  # not while a run extracts into the store
            store.write_segments(merged, replace_videos=set(current["video_id"]) | set(frame["video_id"]))
    return 0


if __name__ == "__main__":
    from workflows.cli import main

    sys.exit(main(["label", *sys.argv[1:]]))
