"""Damaged weights are refused in one line that names the file: checksums of every tensor file a run writes,
non-finite outputs that never become a class, and `mcr predict` that says why each input failed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from pipeline.files import sha256_file
from tests.workflows.synthetic import write_config, write_mult_pickle
from workflows.cli import main as mcr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    data = write_mult_pickle(root, sizes=(24, 8, 8))
    config = write_config(root, epochs=2)
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(root / "run"),
                "--no-progress"]) == 0
    return root, data, config


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run, to damage."""
    shutil.copytree(trained[0] / "run", tmp_path / "run")
    return tmp_path / "run"


def _error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and err[0].startswith(f"mcr {command}: error: ")
    return err[0]


def _refused(run: Path, data: Path, tmp_path: Path, capsys) -> str:
    """`mcr evaluate` and `mcr predict` both exit 2 with the same one line; predict writes nothing."""
    capsys.readouterr()
    assert mcr(["evaluate", str(run), "--data", str(data)]) == 2
    line = _error_line(capsys, "evaluate")
    out = tmp_path / "predictions.csv"
    (tmp_path / "any.mp4").touch()  # the input exists: the model is what is refused, before any extraction
    assert mcr(["predict", str(tmp_path / "any.mp4"), "--model", str(run), "--out", str(out), "--workers", "1",
                "--no-progress"]) == 2
    assert _error_line(capsys, "predict").split(": error: ", 1)[1] == line.split(": error: ", 1)[1]
    assert not out.exists()
    return line


def _past_header(path: Path) -> int:
    """The offset of the first tensor byte of a safetensors file (after its 8-byte length and JSON header)."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def test_a_run_records_the_sha256_of_every_tensor_file(trained):
    run = trained[0] / "run"
    for name in ("best", "last"):
        record = json.loads((run / "checkpoints" / f"{name}.json").read_text())
        assert record["sha256"] == sha256_file(run / "checkpoints" / f"{name}.safetensors")
    assert json.loads((run / "config.json").read_text())["normalizer_sha256"] == \
        sha256_file(run / "normalizer.safetensors")


def test_flipped_bytes_inside_best_are_refused(run, trained, tmp_path, capsys):
    best = run / "checkpoints" / "best.safetensors"
    data = bytearray(best.read_bytes())
    start = _past_header(best)
    data[start + 5:start + 9] = b"\xff\xff\xff\xff"  # a NaN where a weight was: still a valid file
    best.write_bytes(bytes(data))
    line = _refused(run, trained[1], tmp_path, capsys)
    assert str(best) in line and "SHA-256" in line and "restore the file from a backup" in line


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_truncated_or_empty_best_is_refused(run, trained, tmp_path, capsys, damage):
    best = run / "checkpoints" / "best.safetensors"
    best.write_bytes(best.read_bytes()[:_past_header(best) + 10] if damage == "truncated" else b"")
    line = _refused(run, trained[1], tmp_path, capsys)
    assert str(best) in line and ("empty" in line if damage == "empty" else "SHA-256" in line)


def test_a_missing_record_is_refused(run, trained, tmp_path, capsys):
    (run / "checkpoints" / "best.json").unlink()
    line = _refused(run, trained[1], tmp_path, capsys)
    assert str(run / "checkpoints" / "best.json") in line and "missing" in line


def test_a_damaged_normalizer_is_refused(run, trained, tmp_path, capsys):
    norm = run / "normalizer.safetensors"
    data = bytearray(norm.read_bytes())
    data[-1] ^= 0x40
    norm.write_bytes(bytes(data))
    line = _refused(run, trained[1], tmp_path, capsys)
    assert str(norm) in line and "config.json" in line


def test_a_garbled_header_with_a_matching_checksum_is_one_line(run, trained, tmp_path, capsys):
    best = run / "checkpoints" / "best.safetensors"
    best.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    record = json.loads((run / "checkpoints" / "best.json").read_text())
    (run / "checkpoints" / "best.json").write_text(json.dumps(dict(record, sha256=sha256_file(best))))
    line = _refused(run, trained[1], tmp_path, capsys)
    assert str(best) in line and "not a readable safetensors file" in line


@pytest.mark.parametrize("damage", ["tampered", "record lost"])
def test_resume_never_loads_a_damaged_last_checkpoint(run, trained, capsys, damage):
    """A last.safetensors that does not match last.json (damaged, or the run was killed between the two writes)
    is not resumed from: training starts again and ends with the same weights."""
    _, data, config = trained
    last = run / "checkpoints" / "last.safetensors"
    if damage == "tampered":
        raw = bytearray(last.read_bytes())
        raw[_past_header(last) + 3] ^= 0x01
        last.write_bytes(bytes(raw))
    else:
        (run / "checkpoints" / "last.json").unlink()
    capsys.readouterr()
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    named = last if damage == "tampered" else last.with_suffix(".json")
    assert f"{named}: [load] " in err and "training again from epoch 1" in err and f"resuming {run} after" not in err
    assert len(json.loads((run / "history.json").read_text())) == 2
    for name in ("best", "last"):
        path = run / "checkpoints" / f"{name}.safetensors"
        assert json.loads((run / "checkpoints" / f"{name}.json").read_text())["sha256"] == sha256_file(path)
        a, b = load_file(str(path)), load_file(str(trained[0] / "run" / "checkpoints" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_resume_after_best_was_damaged_trains_again(run, trained, capsys):
    _, data, config = trained
    best = run / "checkpoints" / "best.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    capsys.readouterr()
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    assert str(best) in capsys.readouterr().err
    assert json.loads((run / "checkpoints" / "best.json").read_text())["sha256"] == sha256_file(best)


def _nan_weights(run: Path) -> None:
    """Weights that truly give NaN, saved the regular way (so their checksum matches)."""
    from workflows.checkpoint import load_model, read_record, save_weights

    best = run / "checkpoints" / "best.safetensors"
    model, cfg, meta = load_model(best)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    save_weights(model, best, model_config=cfg.to_dict(), meta=meta)
    assert read_record(best)["sha256"] == sha256_file(best)


def test_nan_outputs_are_an_error_naming_the_checkpoint(run, trained, capsys):
    _nan_weights(run)
    capsys.readouterr()
    assert mcr(["evaluate", str(run), "--data", str(trained[1])]) == 2
    line = _error_line(capsys, "evaluate")
    assert str(run / "checkpoints" / "best.safetensors") in line and "non-finite outputs for 8 of 8" in line
    assert not (run / "eval-test.json").exists()


def test_nan_outputs_never_become_a_class():
    from workflows.inference import require_finite
    from workflows.predict import prediction_columns

    finite = prediction_columns("regression", np.array([[0.5], [-1.0], [0.0]], np.float32))
    assert list(finite["predicted_polarity"]) == ["positive", "negative", "neutral"]
    for task, outputs in [("regression", np.array([[0.5], [np.nan]], np.float32)),
                          ("iemocap", np.full((2, 4, 2), np.nan, np.float32)),
                          ("classification", np.array([[np.inf, 0.0]], np.float32))]:
        with pytest.raises(ValueError, match="not finite"):
            prediction_columns(task, outputs)
    with pytest.raises(ValueError, match=r"best.safetensors: \[predict\] .* for 2 of 3 segments \(of b, c\)"):
        require_finite(np.array([[0.1], [np.nan], [np.inf]]), "run/best.safetensors", ["a", "b", "c"],
                       stage="predict")


# ------------------------------------------------------------------------------ mcr predict: per-file causes
def _predict_lines(capsys) -> list[str]:
    """stderr of `mcr predict` but its notes (the Dask dashboard, the coverage, a one-seed run's missing sd); never
    a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    notes = ("Dask dashboard:", "speech coverage:", "predicted_sentiment_sd is empty")
    return [line for line in err.strip().splitlines() if not line.startswith(notes)]


@pytest.mark.slow
def test_predict_on_one_undecodable_file_names_it_and_its_stage(trained, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "x.mp4").write_text("this is a text file, not a video\n")
    out = tmp_path / "out.csv"
    capsys.readouterr()
    assert mcr(["predict", str(videos), "--model", str(trained[0] / "run"), "--out", str(out),
                "--store", str(tmp_path / "store"), "--workers", "1", "--no-progress"]) == 2
    (line,) = _predict_lines(capsys)
    assert line.startswith(f"mcr predict: error: {videos / 'x.mp4'}: [decode] ") and "stream" not in line
    import pandas as pd

    (row,) = pd.read_csv(out).to_dict("records")  # the failed file is a row, not only a line on stderr
    assert row["video_id"] == "x" and row["status"] == "failed" and row["reason"].startswith("[decode] ")


def _mult_pickle(folder: Path, dims: tuple[int, int, int], sizes=(24, 8, 8)) -> Path:
    """A MulT-style pickle of random sequences with the feature sizes of ``dims`` (language, visual, acoustic)."""
    import pickle

    rng = np.random.default_rng(0)
    data = {}
    for name, n in zip(("train", "valid", "test"), sizes):
        data[name] = {key: rng.normal(size=(n, 6, d)).astype(np.float32)
                      for key, d in zip(("text", "vision", "audio"), dims)}
        data[name]["labels"] = rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32)
        data[name]["id"] = np.array([[f"vid{i // 4}".encode(), str(i).encode(), b""] for i in range(n)])
    path = folder / "mosi_data_noalign.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A real clip extracted into a store, and a tiny run trained on random data of the same feature sizes."""
    from pipeline.store import FeatureStore
    from pipeline.store_source import segment_records
    from tests.extractors.media_files import cremad_clips

    clip = cremad_clips()["ANG"]
    root = tmp_path_factory.mktemp("predict")
    (root / "videos").mkdir()
    (root / "videos" / "good.flv").symlink_to(clip)
    store = root / "store"
    assert mcr(["extract", str(root / "videos"), "--store", str(store), "--workers", "1", "--no-progress"]) == 0
    store_ = FeatureStore(str(store))
    record = segment_records(store_, store_.segments(), max_len=None)[0]
    data = _mult_pickle(root, tuple(record[m].shape[1] for m in ("language", "visual", "acoustic")))
    assert mcr(["train", "--data", str(data), "--config", str(write_config(root, epochs=1)), "--out",
                str(root / "run"), "--no-progress"]) == 0
    return root, store


@pytest.mark.slow
def test_predict_reports_each_failed_file_and_predicts_the_others(extracted, tmp_path, capsys):
    import pandas as pd

    root, store = extracted
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "good.flv").symlink_to(root / "videos" / "good.flv")
    (videos / "bad.mp4").write_bytes(b"\x00" * 64)
    out = tmp_path / "out.csv"
    capsys.readouterr()
    assert mcr(["predict", str(videos), "--model", str(root / "run"), "--out", str(out), "--store", str(store),
                "--workers", "1", "--no-progress"]) == 1
    (line,) = _predict_lines(capsys)
    assert line.startswith(f"failed: {videos / 'bad.mp4'} [decode] ")
    rows = pd.read_csv(out)
    good, bad = rows[rows["status"] == "ok"], rows[rows["status"] == "failed"]
    assert list(good["video_id"]) == ["good"] and np.isfinite(good["predicted_sentiment"]).all()
    assert set(good["predicted_polarity"]) <= {"positive", "negative", "neutral"}
    assert list(bad["video_id"]) == ["bad"] and bad["reason"].iloc[0].startswith("[decode] ")
    assert bad["predicted_sentiment"].isna().all()


@pytest.mark.slow
def test_predict_with_weights_that_give_nan_writes_no_class(extracted, tmp_path, capsys):
    root, store = extracted
    shutil.copytree(root / "run", tmp_path / "run")
    _nan_weights(tmp_path / "run")
    out = tmp_path / "out.csv"
    capsys.readouterr()
    assert mcr(["predict", str(root / "videos"), "--model", str(tmp_path / "run"), "--out", str(out),
                "--store", str(store), "--workers", "1", "--no-progress"]) == 2
    (line,) = _predict_lines(capsys)
    assert f"{tmp_path / 'run' / 'checkpoints' / 'best.safetensors'}: [predict] " in line
    assert "non-finite outputs for 1 of 1 segments (of good)" in line and "weights may be corrupt" in line
    assert not out.exists()
