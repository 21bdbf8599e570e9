"""benchmarks/model_speed.py runs end to end (batch 2 and short sequences here; the real numbers come from running
the script itself)."""
from __future__ import annotations

import json

from benchmarks import model_speed, report

QUICK = ["--quick", "--json", "--batch", "2", "--lengths", "6,11,9", "--ragged"]


def test_quick_json_reports_both_models_and_leaves_the_doc_alone(capsys):
    before = report.DOC.read_bytes()
    listing = sorted(p.name for p in report.DOC.parent.iterdir())
    assert model_speed.main(QUICK) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mcr_train_step_s"] > 0 and result["mult_train_step_s"] > 0
    assert abs(result["ratio"] - result["mcr_train_step_s"] / result["mult_train_step_s"]) < 1e-2
    assert result["mcr_params"] > 0 and result["mult_params"] > result["mcr_params"]
    assert result["lengths"] == {"l": 6, "v": 11, "a": 9}
    assert report.DOC.read_bytes() == before  # a measurement without --write does not touch docs/
    assert sorted(p.name for p in report.DOC.parent.iterdir()) == listing


def test_write_puts_the_table_into_its_section(capsys, tmp_path, monkeypatch):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkept\n<!-- END other -->\n")
    monkeypatch.setattr(report, "DOC", doc)
    assert model_speed.main([*QUICK, "--write"]) == 0
    text = doc.read_text()
    assert "<!-- BEGIN other -->\nkept\n<!-- END other -->" in text
    section = text.split("<!-- BEGIN model_speed -->")[1].split("<!-- END model_speed -->")[0]
    assert "| MCR |" in section and "| MulT |" in section
    assert [p.name for p in tmp_path.iterdir()] == ["benchmarks.md"]  # written atomically, no temporary left
