"""`mcr train --cv K --group-by COLUMN` on a tiny store: folds by group, cv.json, a rerun that trains nothing."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.workflows.synthetic import write_config
from workflows.cli import main as mcr

SPEAKERS = ("s1", "s2", "s3", "s4", "s5", "s6")


def _speaker_store(root):
    """Six videos (one speaker each) of four one-second segments labelled calm / angry; 100 Hz acoustic frames."""
    from pipeline.store import FeatureStore
    from tests.pipeline.streams import frames, language, meta

    rng = np.random.default_rng(0)
    store = FeatureStore(root)
    rows = []
    for v, speaker in enumerate(SPEAKERS):
        vid = f"video{v}"
        words = [(f"w{i}", i + 0.1, i + 0.6) for i in range(4)]
        store.write_stream("language", vid, language(words, rng.normal(size=(4, 5)).astype(np.float32)),
                           meta("language", 5, None))
        store.write_stream("acoustic", vid, frames(0.01 * np.arange(400), rng.normal(size=(400, 3))
                                                   .astype(np.float32)), meta("acoustic", 3, 0.01))
        store.write_stream("visual", vid, frames(0.1 * np.arange(40), rng.normal(size=(40, 2)).astype(np.float32),
                                                 np.ones(40, bool)), meta("visual", 2, 0.1))
        for s in range(4):
            rows.append({"video_id": vid, "segment_id": f"{vid}_{s}", "start": float(s), "end": s + 1.0,
                         "split": "train", "label": ("calm", "angry")[s % 2], "speaker": speaker})
    store.write_segments(pd.DataFrame(rows))
    return root


def test_cv_by_speaker_tests_every_segment_once_and_a_rerun_trains_nothing(tmp_path, capsys):
    store = _speaker_store(tmp_path / "store")
    config = write_config(tmp_path, epochs=2, batch_size=4)
    command = ["train", "--data", str(store), "--config", str(config), "--out", str(tmp_path / "cv"), "--cv", "3",
               "--group-by", "speaker", "--no-progress"]
    assert mcr(command) == 0
    table = capsys.readouterr().out
    assert "pooled" in table and "unweighted_accuracy" in table
    cv = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert set(cv) == {"k", "group_by", "task", "classes", "seconds", "seeds", "pooled", "folds"} and cv["seeds"] == 1
    assert (cv["k"], cv["group_by"], cv["task"], cv["classes"]) == (3, "speaker", "classification", ["angry", "calm"])
    assert set(cv["pooled"]) == {"accuracy", "unweighted_accuracy", "macro_f1", "confusion"}
    assert cv["pooled"]["confusion"]["classes"] == ["angry", "calm"]
    assert np.asarray(cv["pooled"]["confusion"]["matrix"]).sum() == 24  # every segment tested once
    assert [f["test_groups"] for f in cv["folds"]] == [["s1", "s2"], ["s3", "s4"], ["s5", "s6"]]
    assert [f["valid_groups"] for f in cv["folds"]] == [["s3"], ["s5"], ["s1"]]
    for fold in cv["folds"]:
        assert set(fold) == {"fold", "test_groups", "valid_groups", "n_test", "accuracy", "unweighted_accuracy",
                             "macro_f1", "seconds", "best_epoch"}
        assert fold["n_test"] == 8 and 1 <= fold["best_epoch"] <= 2
        record = json.loads((tmp_path / "cv" / f"fold-{fold['fold']}" / "config.json").read_text())
        assert record["model"]["pool_a"] == 4  # 100 Hz acoustic frames at the default 25 Hz stream rate
        assert record["data"]["cv"]["test_groups"] == fold["test_groups"]
    history = (tmp_path / "cv" / "fold-1" / "history.json").read_text()

    assert mcr(command) == 0  # a rerun: every fold is finished, nothing trains again
    assert (tmp_path / "cv" / "fold-1" / "history.json").read_text() == history
    again = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert again["pooled"] == cv["pooled"] and [f["seconds"] for f in again["folds"]] == [f["seconds"] for f in
                                                                                         cv["folds"]]


def test_cv_with_seeds_averages_the_outputs_of_each_folds_seeds(tmp_path, capsys):
    from workflows.cross_validation import _test_outputs, labelled_samples
    from pipeline.arrays import group_cv_folds

    store = _speaker_store(tmp_path / "store")
    config = write_config(tmp_path, epochs=2, batch_size=4)
    assert mcr(["train", "--data", str(store), "--config", str(config), "--out", str(tmp_path / "cv"), "--cv", "3",
                "--group-by", "speaker", "--seeds", "2", "--seed", "5", "--no-progress"]) == 0
    cv = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert cv["seeds"] == 2 and all(len(f["best_epoch"]) == 2 for f in cv["folds"])
    assert "best epoch" in capsys.readouterr().out
    whole, groups = labelled_samples(store, "speaker")
    outputs = np.zeros((len(whole), 2), np.float32)
    for f, fold in enumerate(group_cv_folds(groups.tolist(), 3)):
        seeds = [tmp_path / "cv" / f"fold-{f}" / f"seed-{s}" for s in (5, 6)]
        each = [_test_outputs(d, whole.subset(fold["test"]), 256) for d in seeds]
        assert not np.allclose(each[0], each[1])  # two models, not one twice
        outputs[fold["test"]] = (each[0] + each[1]) / 2
    expected = np.bincount(2 * whole.labels + outputs.argmax(1), minlength=4).reshape(2, 2)
    assert np.array_equal(np.asarray(cv["pooled"]["confusion"]["matrix"]), expected)  # the mean's predictions
    for f in range(3):  # folds written before fold.json recorded seeds: their seeds' folders are counted
        record = tmp_path / "cv" / f"fold-{f}" / "fold.json"
        record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "seeds"}))
    history = (tmp_path / "cv" / "fold-1" / "seed-6" / "history.json").read_text()
    assert mcr(["train", "--data", str(store), "--config", str(config), "--out", str(tmp_path / "cv"), "--cv", "3",
                "--group-by", "speaker", "--seeds", "2", "--seed", "5", "--no-progress"]) == 0
    assert (tmp_path / "cv" / "fold-1" / "seed-6" / "history.json").read_text() == history  # reused, not retrained
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["pooled"] == cv["pooled"]
    capsys.readouterr()
    assert mcr(["train", "--data", str(store), "--config", str(config), "--out", str(tmp_path / "cv"), "--cv", "3",
                "--group-by", "speaker", "--seed", "5", "--no-progress"]) == 2  # other seeds: not mixed in
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mcr train: error: ") and "fold-0: [cv] holds a fold of other groups or seeds" in err[-1]


def test_cv_by_a_missing_column_is_a_one_line_error(tmp_path, capsys):
    store = _speaker_store(tmp_path / "store")
    assert mcr(["train", "--data", str(store), "--out", str(tmp_path / "cv"), "--cv", "3", "--group-by", "actor",
                "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 'actor' column" in err[0] and "speaker" in err[0], err
