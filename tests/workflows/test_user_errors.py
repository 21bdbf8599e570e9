"""What a new user runs into ends in one line that names the file and the stage, never a traceback."""
from __future__ import annotations

import json
import time

import pytest

from tests.pipeline.test_sources import _small_store
from tests.workflows.synthetic import write_config, write_mult_pickle
from workflows.cli import main as mcr


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    data = write_mult_pickle(root, sizes=(24, 8, 8))
    config = write_config(root, epochs=1)
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(root / "run"),
                "--no-progress"]) == 0
    return root, data


def test_evaluate_on_a_split_that_does_not_exist(trained, capsys):
    root, data = trained
    capsys.readouterr()
    assert mcr(["evaluate", str(root / "run"), "--data", str(data), "--split", "foo"]) == 2
    line = _one_line(capsys)
    assert "no split 'foo'" in line and "test, train, valid" in line and str(data) in line


def test_report_on_an_interrupted_run(trained, tmp_path, capsys):
    root, data = trained
    # killed before its first epoch ended: config.json but no checkpoint
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "config.json").write_text((root / "run" / "config.json").read_text())
    capsys.readouterr()
    assert mcr(["report", str(tmp_path / "early")]) == 2
    assert "rerun the same `mcr train` command to resume" in _one_line(capsys)

    # killed after an epoch: no metrics.json yet; the report shows what there is and says so
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.json", "history.json", "normalizer.safetensors"):
        (partial / name).write_bytes((root / "run" / name).read_bytes())
    (partial / "checkpoints").mkdir()
    for name in ("best.safetensors", "best.json"):
        (partial / "checkpoints" / name).write_bytes((root / "run" / "checkpoints" / name).read_bytes())
    assert mcr(["report", str(partial), "--data", str(data)]) == 0
    html = (partial / "report" / "index.html").read_text()
    assert "Training has not finished" in html and (partial / "report" / "curves.png").exists()


def test_train_on_a_store_without_labels(tmp_path, capsys):
    store = _small_store(tmp_path / "store")
    store.write_segments(store.segments().drop(columns=["label"]))
    capsys.readouterr()
    assert mcr(["train", "--data", str(tmp_path / "store"), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    line = _one_line(capsys)
    assert "[load]" in line and "'label' column" in line and "manifest" in line


@pytest.mark.slow
def test_an_unreachable_scheduler_fails_fast_in_one_line(tmp_path, capsys):
    store = tmp_path / "store"
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"not a video")
    started = time.perf_counter()
    code = mcr(["extract", str(tmp_path / "videos"), "--store", str(store), "--scheduler", "tcp://127.0.0.1:9",
                "--no-progress"])
    assert code == 2 and time.perf_counter() - started < 15
    line = _one_line(capsys)
    assert "tcp://127.0.0.1:9" in line and "[dask]" in line and "cannot reach" in line


def test_debug_shows_the_traceback(trained, capsys):
    root, data = trained
    capsys.readouterr()
    with pytest.raises(ValueError, match="no split 'foo'"):
        mcr(["--debug", "evaluate", str(root / "run"), "--data", str(data), "--split", "foo"])


def test_a_checkpoint_carries_its_model_config(trained):
    from workflows.checkpoint import read_metadata

    root, _ = trained
    meta = read_metadata(root / "run" / "checkpoints" / "best.safetensors")
    assert json.loads(meta["model_config"]) == json.loads((root / "run" / "config.json").read_text())["model"]
