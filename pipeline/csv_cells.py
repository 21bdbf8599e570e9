"""CSV cells that a spreadsheet shows as text and never runs: OWASP's rule against formula (CSV) injection.

A spreadsheet that opens a CSV takes a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return for
a formula (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``). Every CSV the project writes (predictions through
:func:`write_frame`, manifests) passes its text cells and column names through :func:`neutralise`, which puts a
single quote before such a cell; numbers are left as they are (``-1.5`` in a numeric column is a number). Where the
project reads its own CSVs back (manifests, the viewer's predictions), :func:`restore` takes the quote off again; a
text that already starts with quotes before one of those characters gets one more quote, so a round trip gives
every text back unchanged.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _quoted_formula(text: str) -> bool:
    return text.lstrip("'").startswith(FORMULA_STARTS)


def neutralise(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is a text a spreadsheet would run; anything else as it is."""
    return "'" + value if isinstance(value, str) and _quoted_formula(value) else value


def restore(value: Any) -> Any:
    """The text :func:`neutralise` was given (one leading ``'`` before a formula's first character taken off)."""
    return value[1:] if isinstance(value, str) and value.startswith("'") and _quoted_formula(value) else value


def restore_row(row: dict) -> dict:
    """A ``csv.DictReader`` row with its cells through :func:`restore`."""
    return {key: restore(value) for key, value in row.items()}


def _text_columns(frame: pd.DataFrame) -> list:
    return [c for c in frame.columns if frame[c].dtype == object
            or isinstance(frame[c].dtype, (pd.StringDtype, pd.CategoricalDtype))]


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` for ``to_csv``: its text cells and column names through :func:`neutralise`."""
    out = frame.copy()
    for column in _text_columns(frame):
        out[column] = frame[column].map(neutralise)
    out.columns = [neutralise(c) for c in frame.columns]
    return out


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    """``frame`` as CSV at ``path``: text neutralised and quoted (a carriage return in a transcript stays in its
    cell), numbers bare."""
    neutralise_frame(frame).to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)


def restore_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as read from a CSV that :func:`neutralise_frame` wrote: text cells and column names restored."""
    out = frame.copy()
    out.columns = [restore(c) for c in frame.columns]
    for column in _text_columns(out):
        out[column] = out[column].map(restore)
    return out
