"""What a corpus is made of: a folder of videos (and audio files) or a manifest CSV, as a list of
:class:`VideoSource` (a :class:`Corpus`, which also lists what a folder scan passed over, with the reason).

A manifest has a ``path`` column (absolute, or relative to the CSV's folder) and optionally ``video_id``,
``segment_id``, ``start`` and ``end`` (seconds inside the video), ``split``; every other column is a label.
Several rows may name the same video: one segment each.
"""
from __future__ import annotations

import csv
import math
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline.csv_cells import restore_row
from pipeline.files import sha256_text
from pipeline.manifest import Segment, VideoSource
from pipeline.store import MAX_VIDEO_ID_LENGTH, check_video_id

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp",
                    ".ts", ".mts", ".ogv")
# audio-only files give language and acoustic streams and an empty visual stream (extractors.media decodes either)
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aif", ".aiff",
                    ".amr", ".mka", ".ac3")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS
MANIFEST_COLUMNS = ("path", "video_id", "segment_id", "start", "end", "split")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Corpus(list):
    """The media of a corpus, a ``list`` of :class:`VideoSource`, and what its scan passed over.

    ``skipped`` holds one ``{"path", "reason"}`` dict per file (or folder) a folder scan did not take; extraction
    copies it into its summary, so nothing is left out silently.
    """

    def __init__(self, sources=(), skipped=()):
        super().__init__(sources)
        self.skipped: list[dict[str, str]] = list(skipped)


def _raw_id(relative: str | Path) -> str:
    parts = list(Path(relative).with_suffix("").parts)
    vid = "__".join(re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in parts if p not in ("", "."))
    return re.sub(r"^[._-]+", "", vid) or "video"


def _fit_id(vid: str) -> str:
    """An id from a file name, cut to :data:`MAX_VIDEO_ID_LENGTH`: its start, '-' and 12 hex of its hash."""
    if len(vid) > MAX_VIDEO_ID_LENGTH:
        vid = f"{vid[:MAX_VIDEO_ID_LENGTH - 13]}-{sha256_text(vid)[:12]}"
    return check_video_id(vid)


def video_id_from_path(relative: str | Path) -> str:
    """A stable id from a path relative to the corpus root: folders joined by ``__``, odd characters as ``_``.

    ``talks/day 1/intro.mp4`` -> ``talks__day_1__intro``. Users do not choose file names with ids in mind, so an
    id over :data:`MAX_VIDEO_ID_LENGTH` characters is shortened (deterministically) rather than refused.
    """
    return _fit_id(_raw_id(relative))


def check_segment_id(segment_id: str) -> str:
    """Segment ids are free text (never part of a path) but not blank and without control characters."""
    if not isinstance(segment_id, str) or not segment_id.strip() or _CONTROL.search(segment_id):
        raise ValueError(f"invalid segment_id {segment_id!r}: give a non-blank id without control characters "
                         "(newlines, tabs)")
    return segment_id


def scan_folder(root: str | Path, *, extensions: tuple[str, ...] = MEDIA_EXTENSIONS) -> Corpus:
    """Every file under ``root`` (recursively) whose suffix is in ``extensions``, sorted by path.

    Ids come from the path relative to ``root``; when two files differ only by their suffix, the suffix is kept
    in both ids (``a.mp4`` -> ``a_mp4``) so that neither depends on which one was found first. Everything else
    the scan meets is listed in the result's ``skipped`` with the reason: hidden files and folders, links to
    folders (not followed), other suffixes, broken links and special files, unreadable folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    files: list[Path] = []
    skipped: list[dict[str, str]] = []

    def skip(path: str | Path, reason: str) -> None:
        skipped.append({"path": str(path), "reason": reason})

    def unreadable(error: OSError) -> None:
        skip(error.filename, f"cannot read the folder ({type(error).__name__})")

    for folder, dirs, names in os.walk(root, onerror=unreadable):
        for d in sorted(dirs):
            if d.startswith("."):
                skip(Path(folder, d), "hidden folder (not scanned)")
            elif os.path.islink(os.path.join(folder, d)):
                skip(Path(folder, d), "link to a folder (not followed)")
            elif Path(d).suffix.lower() in extensions:
                skip(Path(folder, d), "a folder, though named like a media file (what it holds is scanned)")
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d)))
        for name in names:
            p = Path(folder, name)
            if name.startswith("."):
                skip(p, "hidden file")
            elif not p.is_file():
                skip(p, "broken link" if p.is_symlink() else "not a regular file")
            elif p.suffix.lower() not in extensions:
                skip(p, f"not a video or audio file ({p.suffix.lower() or 'no suffix'})")
            else:
                files.append(p)
    files.sort()
    raw = [_raw_id(p.relative_to(root)) for p in files]
    counts: dict[str, int] = defaultdict(int)
    for vid in raw:
        counts[vid] += 1
    ids = [_fit_id(f"{vid}_{p.suffix.lstrip('.').lower()}" if counts[vid] > 1 else vid)
           for vid, p in zip(raw, files)]
    taken: dict[str, Path] = {}
    for vid, p in zip(ids, files):
        if taken.setdefault(vid, p) != p:
            raise ValueError(f"{root}: {taken[vid]} and {p} would both get the video id {vid!r}; rename one, or "
                             f"list the videos in a manifest CSV with a video_id column")
    skipped.sort(key=lambda s: s["path"])
    return Corpus([VideoSource(vid, str(p.resolve())) for vid, p in zip(ids, files)], skipped)


def _number(value: str | None, column: str, where: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{where}: column {column!r} is not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{where}: column {column!r} must be a finite, non-negative number, got {value!r}")
    return number


def _label(value: str, column: str, where: str) -> Any:
    """Labels stay strings unless they read as numbers (``-1.4`` -> -1.4, ``3`` -> 3.0); NaN and infinity are
    refused (an empty cell is the way to say "no label")."""
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        raise ValueError(f"{where}: column {column!r} is {value!r}: a label is a finite number or a class name; "
                         "leave the cell empty for a segment without a label")
    return number


def read_csv(csv_path: str | Path, stage: str = "") -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of a manifest-like CSV (UTF-8, with or without a byte-order mark), read strictly: an
    unclosed quote, a column named twice or a row with more cells than columns is refused in one line naming the
    file (and the line); cells a spreadsheet would run come back without their guard quote (:mod:`.csv_cells`)."""
    tag = f"[{stage}] " if stage else ""
    where = f"{csv_path}: {tag}"
    with open(csv_path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets' byte-order mark
        reader = csv.DictReader(f, strict=True)
        try:
            columns = list(reader.fieldnames or [])
            if twice := sorted({c for c in columns if columns.count(c) > 1}):
                raise ValueError(f"{where}the columns {', '.join(map(repr, twice))} are named twice")
            rows = []
            for row in reader:
                if None in row:
                    raise ValueError(f"{csv_path}:{reader.line_num}: {tag}the row has "
                                     f"{len(columns) + len(row[None])} cells for {len(columns)} columns")
                rows.append(restore_row(row))
        except csv.Error as error:
            raise ValueError(f"{where}not a readable CSV file (line {reader.line_num}: {error}; is a quote left "
                             "open?)") from None
        except UnicodeDecodeError as error:
            raise ValueError(f"{where}not UTF-8 text (byte {error.start}); save the manifest as UTF-8 CSV") from None
    return columns, rows


def read_manifest(csv_path: str | Path) -> Corpus:
    """A manifest CSV -> one :class:`VideoSource` per distinct video, its rows as segments, in file order."""
    csv_path = Path(csv_path)
    fieldnames, rows = read_csv(csv_path)
    if "path" not in fieldnames:
        raise ValueError(f"{csv_path}: a manifest needs a 'path' column, found {fieldnames or 'none'}")
    label_columns = [c for c in fieldnames if c not in MANIFEST_COLUMNS]
    paths: dict[str, str] = {}
    segments: dict[str, list[Segment]] = defaultdict(list)
    for i, row in enumerate(rows, start=2):
        where = f"{csv_path}:{i}"
        if not (row.get("path") or "").strip():
            raise ValueError(f"{where}: the row has no path")
        if _CONTROL.search(row["path"]):
            raise ValueError(f"{where}: the path holds a control character ({row['path']!r}: a NUL, or a newline "
                             "from a quote left open?)")
        path = Path(row["path"])
        path = str(path if path.is_absolute() else (csv_path.parent / path).resolve())
        try:
            vid = check_video_id(row["video_id"]) if row.get("video_id") else video_id_from_path(Path(row["path"]))
            segment_id = check_segment_id(row["segment_id"]) if row.get("segment_id") else None
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        if paths.setdefault(vid, path) != path:
            raise ValueError(f"{where}: video_id {vid!r} names two files: {paths[vid]} and {path}")
        start = _number(row.get("start"), "start", where) or 0.0
        end = _number(row.get("end"), "end", where)
        if end is not None and end <= start:
            raise ValueError(f"{where}: segment ends ({end}) at or before it starts ({start})")
        labels = {c: _label(row[c], c, where) for c in label_columns if row.get(c) not in (None, "")}
        segment_id = segment_id or f"{vid}_{len(segments[vid])}"
        segments[vid].append(Segment(vid, segment_id, start, end, row.get("split") or None, labels))
    for vid, segs in segments.items():
        ids = [s.segment_id for s in segs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{csv_path}: video {vid!r} has duplicate segment ids")
    return Corpus(VideoSource(vid, path, tuple(segments[vid])) for vid, path in paths.items())


def load_corpus(source: str | Path) -> Corpus:
    """A folder (scanned recursively; see :func:`scan_folder` for what it skips) or a ``.csv`` manifest."""
    source = Path(source)
    if source.is_dir():
        return scan_folder(source)
    if source.suffix.lower() == ".csv" and source.is_file():
        return read_manifest(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such folder or manifest")
    raise ValueError(f"{source}: give a folder of videos (or audio files) or a manifest .csv")


def segments_of(source: VideoSource) -> tuple[Segment, ...]:
    """The source's segments, or one whole-video segment (``segment_id == video_id``) when it names none."""
    return source.segments or (Segment(source.video_id, source.video_id, 0.0, None),)
