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
    return repr(value) if isinstance(value, float) else str(value)


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
