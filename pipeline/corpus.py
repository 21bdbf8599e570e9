"""What a corpus is made of: a folder of videos or a manifest CSV, as a list of :class:`VideoSource`.

A manifest has a ``path`` column (absolute, or relative to the CSV's folder) and optionally ``video_id``,
``segment_id``, ``start`` and ``end`` (seconds inside the video), ``split``; every other column is a label.
Several rows may name the same video: one segment each.
"""
from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline.manifest import Segment, VideoSource
from pipeline.store import check_video_id

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp",
                    ".ts", ".mts", ".ogv")
MANIFEST_COLUMNS = ("path", "video_id", "segment_id", "start", "end", "split")


def video_id_from_path(relative: str | Path) -> str:
    """A stable id from a path relative to the corpus root: folders joined by ``__``, odd characters as ``_``.

    ``talks/day 1/intro.mp4`` -> ``talks__day_1__intro``.
    """
    parts = list(Path(relative).with_suffix("").parts)
    vid = "__".join(re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in parts if p not in ("", "."))
    vid = re.sub(r"^[._-]+", "", vid) or "video"
    return check_video_id(vid)


def scan_folder(root: str | Path, *, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> list[VideoSource]:
    """Every file under ``root`` (recursively) whose suffix is in ``extensions``, sorted by path.

    Ids come from the path relative to ``root``; when two files differ only by their suffix, the suffix is kept
    in both ids (``a.mp4`` -> ``a_mp4``) so that neither depends on which one was found first.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    ids = [video_id_from_path(p.relative_to(root)) for p in files]
    counts: dict[str, int] = defaultdict(int)
    for vid in ids:
        counts[vid] += 1
    ids = [f"{vid}_{p.suffix.lstrip('.').lower()}" if counts[vid] > 1 else vid for vid, p in zip(ids, files)]
    taken: dict[str, Path] = {}
    for vid, p in zip(ids, files):
        if taken.setdefault(vid, p) != p:
            raise ValueError(f"{root}: {taken[vid]} and {p} would both get the video id {vid!r}; rename one, or "
                             f"list the videos in a manifest CSV with a video_id column")
    return [VideoSource(vid, str(p.resolve())) for vid, p in zip(ids, files)]


def _number(value: str | None, column: str, where: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{where}: column {column!r} is not a number: {value!r}") from None
    if math.isnan(number) or number < 0:
        raise ValueError(f"{where}: column {column!r} must be a non-negative number, got {value!r}")
    return number


def _label(value: str) -> Any:
    """Labels stay strings unless they read as numbers (``-1.4`` -> -1.4, ``3`` -> 3.0)."""
    try:
        return float(value)
    except ValueError:
        return value


def read_manifest(csv_path: str | Path) -> list[VideoSource]:
    """A manifest CSV -> one :class:`VideoSource` per distinct video, its rows as segments, in file order."""
    csv_path = Path(csv_path)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        try:
            fieldnames = reader.fieldnames
            if fieldnames is None or "path" not in fieldnames:
                raise ValueError(f"{csv_path}: a manifest needs a 'path' column, found {fieldnames}")
            rows = list(reader)
        except csv.Error as error:
            raise ValueError(f"{csv_path}: not a readable CSV file ({error})") from None
    label_columns = [c for c in fieldnames if c not in MANIFEST_COLUMNS]
    paths: dict[str, str] = {}
    segments: dict[str, list[Segment]] = defaultdict(list)
    for i, row in enumerate(rows, start=2):
        where = f"{csv_path}:{i}"
        if not (row.get("path") or "").strip():
            raise ValueError(f"{where}: the row has no path")
        path = Path(row["path"])
        path = str(path if path.is_absolute() else (csv_path.parent / path).resolve())
        vid = check_video_id(row.get("video_id") or video_id_from_path(Path(row["path"])))
        if paths.setdefault(vid, path) != path:
            raise ValueError(f"{where}: video_id {vid!r} names two files: {paths[vid]} and {path}")
        start = _number(row.get("start"), "start", where) or 0.0
        end = _number(row.get("end"), "end", where)
        if end is not None and end <= start:
            raise ValueError(f"{where}: segment ends ({end}) at or before it starts ({start})")
        labels = {c: _label(row[c]) for c in label_columns if row.get(c) not in (None, "")}
        segment_id = row.get("segment_id") or f"{vid}_{len(segments[vid])}"
        segments[vid].append(Segment(vid, segment_id, start, end, row.get("split") or None, labels))
    for vid, segs in segments.items():
        ids = [s.segment_id for s in segs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{csv_path}: video {vid!r} has duplicate segment ids")
    return [VideoSource(vid, path, tuple(segments[vid])) for vid, path in paths.items()]


def load_corpus(source: str | Path) -> list[VideoSource]:
    """A folder (scanned recursively) or a ``.csv`` manifest."""
    source = Path(source)
    if source.is_dir():
        return scan_folder(source)
    if source.suffix.lower() == ".csv" and source.is_file():
        return read_manifest(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such folder or manifest")
    raise ValueError(f"{source}: give a folder of videos or a manifest .csv")


def segments_of(source: VideoSource) -> tuple[Segment, ...]:
    """The source's segments, or one whole-video segment (``segment_id == video_id``) when it names none."""
    return source.segments or (Segment(source.video_id, source.video_id, 0.0, None),)
