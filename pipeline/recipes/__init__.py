"""Recipes for the public corpora, in the spirit of lhotse's ``prepare`` recipes: a corpus as released -> manifest rows.

Each recipe is a module with ``prepare(raw_dir: Path, **options) -> list[dict]``: one row per segment, with the
manifest columns of :mod:`pipeline.corpus` (``path``, ``video_id``, ``segment_id``, ``start``, ``end``,
``split``) and the corpus's labels, ``label`` being the one ``mcr train`` learns (the others stay in the store).
Recipes only read file names and label files; they never open the media. Layouts and assumptions:
docs/corpora.md.

:func:`build` runs a recipe, leaves out the rows whose video file is missing (so that extraction does not fail on
them) and checks ids and times; :func:`write_manifest` writes the CSV atomically.
"""
from __future__ import annotations

import csv
import importlib
import inspect
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.corpus import MANIFEST_COLUMNS, check_segment_id
from pipeline.csv_cells import neutralise
from pipeline.files import atomic_write
from pipeline.store import check_video_id

RECIPES: dict[str, str] = {
    "cmu-mosi": "cmu_mosi",
    "cmu-mosei": "cmu_mosei",
    "iemocap": "iemocap",
    "crema-d": "crema_d",
    "ravdess": "ravdess",
    "meld": "meld",
}
"""Corpus name -> module of :mod:`pipeline.recipes` (imported only when used)."""

Row = dict[str, Any]


def available() -> list[str]:
    return list(RECIPES)


def recipe(name: str) -> Callable[..., list[Row]]:
    """The ``prepare`` function of corpus ``name``."""
    if name not in RECIPES:
        raise ValueError(f"unknown corpus {name!r}; one of {', '.join(RECIPES)}")
    return importlib.import_module(f"pipeline.recipes.{RECIPES[name]}").prepare


def options_of(name: str) -> list[str]:
    """The keyword options corpus ``name``'s recipe takes."""
    parameters = inspect.signature(recipe(name)).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


@dataclass
class Prepared:
    """A recipe's rows whose files exist, plus what was left out and why."""

    corpus: str
    rows: list[Row]
    missing: list[str] = field(default_factory=list)
    """Video files the labels name but that are not there (their rows are left out)."""
    missing_rows: int = 0
    invalid: list[str] = field(default_factory=list)
    """Segments left out because they end at or before they start."""

    @property
    def videos(self) -> int:
        return len({r["video_id"] for r in self.rows})


def build(name: str, raw_dir: str | Path, **options: Any) -> Prepared:
    """Run corpus ``name``'s recipe on ``raw_dir``; rows of missing files and empty segments are left out."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: [prepare] no such folder; give the corpus's folder as released")
    accepted = options_of(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        def flags(names: list[str]) -> str:
            return ", ".join("--" + n.replace("_", "-") for n in names) or "none"

        raise ValueError(f"{raw_dir}: [prepare] {name} takes no option {flags(unknown)}; its options: "
                         f"{flags(accepted)}")
    rows = recipe(name)(raw_dir, **options)
    prepared = Prepared(name, [])
    exists: dict[str, bool] = {}
    paths: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        vid = check_video_id(row["video_id"])
        check_segment_id(str(row["segment_id"]))
        if paths.setdefault(vid, row["path"]) != row["path"]:
            raise ValueError(f"{raw_dir}: [prepare] {name}: video id {vid!r} names two files: {paths[vid]} and "
                             f"{row['path']}; keep one copy of the corpus under RAW_DIR")
        key = (vid, str(row["segment_id"]))
        if key in seen:
            raise ValueError(f"{raw_dir}: [prepare] {name}: segment {vid}/{key[1]} is listed twice; keep one copy "
                             "of the corpus (and of its label files) under RAW_DIR")
        seen.add(key)
        if row["path"] not in exists:
            exists[row["path"]] = Path(row["path"]).is_file()
            if not exists[row["path"]]:
                prepared.missing.append(row["path"])
        if not exists[row["path"]]:
            prepared.missing_rows += 1
            continue
        start, end = row.get("start"), row.get("end")
        if end is not None and (not math.isfinite(end) or end <= (start or 0.0)):
            prepared.invalid.append(f"{vid}/{row['segment_id']}")
            continue
        prepared.rows.append(row)
    return prepared


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return neutralise(value) if isinstance(value, str) else str(value)  # text a spreadsheet would run: quoted


def manifest_text(rows: list[Row]) -> str:
    """Rows as manifest CSV text: the manifest columns first, then the labels in first-seen order."""
    labels = list(dict.fromkeys(k for r in rows for k in r if k not in MANIFEST_COLUMNS))
    columns = list(MANIFEST_COLUMNS) + labels
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_manifest(rows: list[Row], out: str | Path) -> Path:
    """Write ``rows`` as a manifest CSV, atomically."""
    atomic_write(Path(out), manifest_text(rows))
    return Path(out)


PRIMARY = {"cmu-mosi": "sentiment", "cmu-mosei": "sentiment", "iemocap": "emotion", "crema-d": "emotion",
           "ravdess": "emotion", "meld": "emotion"}
"""What each corpus's ``label`` holds: the name it keeps when another column is made the label."""


def relabel(rows: list[Row], column: str, primary: str) -> list[Row]:
    """``column`` becomes ``label``; the former label is kept as ``primary``."""
    columns = sorted({k for r in rows for k in r} - set(MANIFEST_COLUMNS))
    if column not in columns:
        raise ValueError(f"[prepare] --label-column {column!r}: no such column; the corpus has {', '.join(columns)}")
    return [{**r, "label": r.get(column), primary: r.get("label")} for r in rows]


def first_items(items: list[str], n: int = 3) -> str:
    """The first ``n`` of ``items`` and how many more, on one line."""
    return ", ".join(items[:n]) + (f" ... (+{len(items) - n})" if len(items) > n else "")


def prepare_manifest(name: str, raw_dir: str | Path, out: str | Path, *, label_column: str | None = None,
                     **options: Any) -> Prepared:
    """Corpus ``name``'s manifest from its release at ``raw_dir``, written to ``out`` (what ``mcr prepare`` and the
    ``[prepare]`` stage of ``mcr run`` do).

    label_column: make this column the label (the corpus's own label is kept under its name, :data:`PRIMARY`).
    options: the recipe's options (:func:`options_of`). Returns the :class:`Prepared` rows as written.
    """
    prepared = build(name, raw_dir, **options)
    if not prepared.rows:
        detail = f"; {len(prepared.missing)} video files named by the labels are missing, e.g. " \
                 f"{first_items(prepared.missing)}" if prepared.missing else ""
        raise FileNotFoundError(f"{raw_dir}: [prepare] no {name} segments found{detail}; check the folder against "
                                "docs/corpora.md")
    if label_column:
        prepared.rows = relabel(prepared.rows, label_column, PRIMARY[name])
    write_manifest(prepared.rows, out)
    return prepared
