"""`mcr report` on a tiny trained run: curves, confusion matrix, attention maps of a sample and the HTML page."""
from __future__ import annotations

import json
from pathlib import Path

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


def test_regression_report_names_classes_and_tabulates_them(tmp_path, capsys):
    data = write_mult_pickle(tmp_path, sizes=(32, 12, 12))
    run = tmp_path / "run"
    assert mcr(["train", "--data", str(data), "--config", str(write_config(tmp_path, epochs=1)), "--out", str(run),
                "--no-progress"]) == 0
    (run / "viewer").mkdir()
    (run / "viewer" / "index.html").write_text("<!doctype html>")
    assert mcr(["report", str(run), "--sample", "1"]) == 0
    html = (run / "report" / "index.html").read_text()
    assert "href='../viewer/index.html'" in html  # RUN/viewer is linked when it exists
    table = html[html.index("class='per-class'"):]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == 8 and "+3 strongly positive" in table and "-1 weakly negative" in table
    metrics = json.loads((run / "metrics.json").read_text())
    support = [sum(row) for row in metrics["test_confusion"]["acc7"]["matrix"]]
    assert sum(support) == 12 and all(f"<td>{n}</td>" in table for n in support)


def test_per_class_metrics_from_a_confusion_matrix():
    from workflows.report import class_names, per_class, per_class_table

    rows = per_class([[3, 1], [2, 0]])  # class 1 is never predicted right: precision 0, recall 0
    assert rows[0]["precision"] == 0.6 and rows[0]["recall"] == 0.75
    assert (rows[0]["support"], rows[0]["predicted"]) == (4, 5)
    assert abs(rows[0]["f1"] - 2 * 0.6 * 0.75 / 1.35) < 1e-12
    assert rows[1]["precision"] == 0.0 and rows[1]["recall"] == 0.0 and rows[1]["f1"] == 0.0
    assert per_class([[2, 0], [1, 0]])[1] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert per_class([[0, 0], [0, 2]])[0] == {"precision": None, "recall": None, "f1": None, "support": 0,
                                              "predicted": 0}
    assert class_names("classification", [0, 1], ["calm", "angry"]) == ["calm", "angry"]
    assert class_names("sad", [0, 1]) == ["not sad", "sad"]
    iemocap = {e: {"classes": [0, 1], "matrix": [[5, 1], [2, 3]]} for e in ("happy", "sad", "angry", "neutral")}
    html = per_class_table(iemocap)
    assert html.count("<tr>") == 5 and "<th>neutral</th>" in html and "<td>5</td><td>4</td>" in html


def _labelled_store(root):
    """The small two-video store of the source tests with text labels: a two-class classification."""
    import pandas as pd

    from tests.pipeline.test_sources import _small_store

    store = _small_store(root)
    store.write_segments(pd.DataFrame({
        "video_id": ["v1", "v1", "v2", "v2"], "segment_id": ["v1_0", "v1_1", "v2_0", "v2_1"],
        "start": [0.0, 1.0, 0.0, 1.0], "end": [1.0, 2.0, 1.0, 2.0], "split": ["train", "train", "valid", "valid"],
        "label": ["happy", "sad", "happy", "sad"]}), replace_videos=["v1", "v2"])
    return store


def test_classification_report_from_a_store_shows_words_seconds_classes_and_the_viewer(tmp_path, capsys,
                                                                                        monkeypatch):
    import matplotlib.figure
    import pandas as pd

    _labelled_store(tmp_path / "store")
    run = tmp_path / "run"
    assert mcr(["train", "--data", str(tmp_path / "store"), "--config", str(write_config(tmp_path, epochs=1)),
                "--out", str(run), "--no-progress"]) == 0
    table = tmp_path / "predictions.csv"
    pd.DataFrame({"video_id": "v2", "segment_id": ["v2_0", "v2_1"], "start": [0.0, 1.0], "end": [1.0, 2.0],
                  "transcript": ["a b", "c d"], "p_happy": [0.7, 0.4], "p_sad": [0.3, 0.6],
                  "predicted_class": ["happy", "sad"]}).to_csv(table, index=False)
    assert mcr(["view", str(table), "--out", str(tmp_path / "viewer")]) == 0

    ticks: dict[str, list[list[str]]] = {}
    save = matplotlib.figure.Figure.savefig

    def spy(fig, path, *args, **kwargs):  # the tick labels of every plot, read just before it is saved
        ticks[Path(path).name] = [[t.get_text() for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
                                  + [ax.get_xlabel(), ax.get_ylabel()] for ax in fig.axes]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    capsys.readouterr()
    assert mcr(["report", str(run), "--split", "valid", "--sample", "0", "--viewer", str(tmp_path / "viewer")]) == 0
    html = (run / "report" / "index.html").read_text()
    assert "Classes: happy, sad." in html and "href='../../viewer/index.html'" in html
    assert "<th>happy</th>" in html and "<th>sad</th>" in html and "label happy" in html
    assert "&ldquo;a b&rdquo;" in html  # the sample's words
    confusion = [t for ax in ticks["confusion.png"] for t in ax]
    assert "happy" in confusion and "sad" in confusion
    attention = [ax for ax in ticks["attention_layer0.png"] if "words" in ax or "video time" in ax]
    labels = {t for ax in attention for t in ax}
    assert {"a", "b"} <= labels  # language steps: the segment's words (v2_0: "a" at 0.1-0.4 s, "b" at 0.5-0.9 s)
    assert {"0.05 s", "0.95 s"} <= labels  # acoustic frames every 0.1 s from 0.05 s
    assert {"0.00 s", "0.75 s"} <= labels  # visual frames every 0.25 s
    assert any("words" in ax for ax in attention) and any("video time" in ax for ax in attention)


def test_report_refuses_a_viewer_folder_without_pages(tmp_path, capsys):
    data = write_mult_pickle(tmp_path, sizes=(24, 8, 8))
    run = tmp_path / "run"
    assert mcr(["train", "--data", str(data), "--config", str(write_config(tmp_path, epochs=1)), "--out", str(run),
                "--no-progress"]) == 0
    capsys.readouterr()
    assert mcr(["report", str(run), "--viewer", str(tmp_path / "nowhere")]) == 2
    assert "mcr view" in capsys.readouterr().err
