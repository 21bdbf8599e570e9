"""benchmarks/model_speed.py runs end to end (batch 2 and short sequences here; the real numbers come from running
the script itself)."""
from __future__ import annotations

import json

from benchmarks import model_speed


def test_quick_json_reports_both_models_and_their_ratio(capsys, tmp_path, monkeypatch):
    written = {}
    monkeypatch.setattr(model_speed, "write_section", lambda name, md: written.setdefault(name, md))
    assert model_speed.main(["--quick", "--json", "--batch", "2", "--lengths", "6,11,9", "--ragged"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mcr_train_step_s"] > 0 and result["mult_train_step_s"] > 0
    assert abs(result["ratio"] - result["mcr_train_step_s"] / result["mult_train_step_s"]) < 1e-2
    assert result["mcr_params"] > 0 and result["mult_params"] > result["mcr_params"]
    assert result["lengths"] == {"l": 6, "v": 11, "a": 9}
    assert "| MCR |" in written["model_speed"] and "| MulT |" in written["model_speed"]
