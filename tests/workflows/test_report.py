"""`mcr report` on a tiny trained run: curves, confusion matrix, attention maps of a sample and the HTML page."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.workflows.synthetic import write_config, write_mult_pickle
from workflows.cli import main as mcr


def _image(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def test_report_of_a_run(tmp_path, capsys):
    data = write_mult_pickle(tmp_path, sizes=(32, 12, 12))
    config = write_config(tmp_path, epochs=2)
    run = tmp_path / "run"
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert mcr(["report", str(run), "--sample", "3"]) == 0
    page = run / "report" / "index.html"
    assert capsys.readouterr().out.strip() == str(page)

    for name in ("curves.png", "confusion.png", "attention_layer0.png", "weights.png"):
        pixels = _image(run / "report" / name)
        assert pixels.shape[0] > 200 and pixels.std() > 5, f"{name} looks empty"
    html = page.read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"{metrics['test']['mae']:.4f}" in html and "acc2_non0" in html
    assert html.count("<img ") == 4 and "vid0_3" in html  # the sample's id ([video, start, end])
    assert "MCR" in html and "regression" in html


def test_report_of_a_multi_seed_mult_run_without_data(tmp_path, capsys):
    data = write_mult_pickle(tmp_path, sizes=(24, 8, 8))
    config = write_config(tmp_path, epochs=1)
    run = tmp_path / "run"
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(run), "--seeds", "2",
                "--arch", "mult", "--no-progress"]) == 0
    data.unlink()  # the training data is gone: the report has everything but the attention sample
    assert mcr(["report", str(run)]) == 0
    assert "no data" in capsys.readouterr().err
    html = (run / "report" / "index.html").read_text()
    assert "±" in html and "MULT" in html and "2 seed(s)" in html
    assert (run / "report" / "curves.png").exists() and not (run / "report" / "weights.png").exists()
