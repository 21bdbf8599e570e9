"""The trainer on small synthetic data: it learns a planted signal, resumes exactly after SIGKILL, sums up seeds."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.workflows.synthetic import planted_split, write_config, write_mult_pickle
from workflows.cli import main as mcr

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_learns_planted_signal_better_than_the_mean(tmp_path):
    from workflows.train import train_run
    from workflows.train_config import configure, fit_model_to_data

    rng = np.random.default_rng(0)
    splits = {"train": planted_split(240, rng), "valid": planted_split(60, rng)}
    model_cfg, tcfg = configure("mosi", {"batch_size": 16, "lr": 3e-3, "model": {"d_model": 16, "n_heads": 2,
                                                                                 "n_layers": 1}},
                                epochs=12, cpu_threads=1)
    result = train_run(splits, fit_model_to_data(model_cfg, splits["train"]), tcfg, tmp_path / "run", progress=False)
    baseline = float(np.abs(splits["valid"].labels - splits["train"].labels.mean()).mean())
    assert result["valid"]["mae"] < 0.5 * baseline, (result["valid"]["mae"], baseline)
    assert result["valid"]["corr"] > 0.7
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 12 and history[-1]["val_loss"] < history[0]["val_loss"]
    assert result["best_epoch"] == int(np.argmin([h["val_loss"] for h in history])) + 1  # selected on valid


def _train_cmd(data: Path, config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "workflows.cli", "train", "--data", str(data), "--config", str(config),
            "--out", str(out), "--no-progress"]


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_to_the_same_end(tmp_path):
    data = write_mult_pickle(tmp_path, sizes=(400, 40, 40))
    config = write_config(tmp_path, epochs=6)
    assert mcr(_train_cmd(data, config, tmp_path / "straight")[3:]) == 0

    killed = tmp_path / "killed"
    state = killed / "checkpoints" / "last.json"
    proc = subprocess.Popen(_train_cmd(data, config, killed), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if state.exists() and json.loads(state.read_text())["epoch"] >= 2:
                break
            time.sleep(0.01)
        time.sleep(0.05)  # into the next epoch's batches
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = json.loads(state.read_text())["epoch"]
    assert 2 <= done < 6, f"killed after epoch {done}: not mid-run"

    resumed = subprocess.run(_train_cmd(data, config, killed), cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {killed} after epoch {done}" in resumed.stderr
    straight_history = json.loads((tmp_path / "straight" / "history.json").read_text())
    killed_history = json.loads((killed / "history.json").read_text())
    assert len(killed_history) == len(straight_history) == 6
    assert [h["val_loss"] for h in killed_history] == pytest.approx([h["val_loss"] for h in straight_history],
                                                                    abs=1e-6)
    for name in ("best", "last"):
        a = load_file(str(tmp_path / "straight" / "checkpoints" / f"{name}.safetensors"))
        b = load_file(str(killed / "checkpoints" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    # a finished run started again trains nothing more
    assert mcr(_train_cmd(data, config, killed)[3:]) == 0
    assert len(json.loads((killed / "history.json").read_text())) == 6


def test_seeds_summary_load_run_and_evaluate(tmp_path, capsys):
    from pipeline.sources import load_source
    from workflows.checkpoint import load_model
    from workflows.evaluate import evaluate_run
    from workflows.inference import predict_arrays
    from workflows.runs import load_run

    data = write_mult_pickle(tmp_path, sizes=(48, 16, 16))
    config = write_config(tmp_path, epochs=2)
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(tmp_path / "run"),
                "--seeds", "2", "--no-progress"]) == 0
    assert "±" in capsys.readouterr().out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    per_seed = [json.loads((tmp_path / "run" / f"seed-{s}" / "metrics.json").read_text()) for s in (0, 1)]
    maes = [m["test"]["mae"] for m in per_seed]
    assert summary["seeds"] == [0, 1] and summary["test"]["mae"]["mean"] == pytest.approx(np.mean(maes))
    assert summary["test"]["mae"]["std"] == pytest.approx(np.std(maes, ddof=1))

    trained = load_run(tmp_path / "run")
    cfg = trained.config
    assert (cfg.d_l, cfg.d_v, cfg.d_a) == (6, 4, 3) and trained.normalizer["language.mean"].shape == (6,)
    test = load_source(data)["test"]
    outputs = predict_arrays(trained.model, test, normalizer=trained.normalizer)
    assert outputs.shape == (16, 1)
    # the checkpoint alone rebuilds the model (its config travels inside it, as nanoGPT's model_args)
    alone, alone_cfg, meta = load_model(trained.run_dir / "checkpoints" / "best.safetensors")
    assert alone_cfg == cfg and meta["epoch"] == trained.best_epoch
    assert np.array_equal(predict_arrays(alone, test, normalizer=trained.normalizer), outputs)

    result = evaluate_run(tmp_path / "run", data, split="test")
    for seed_dir, metrics in zip(sorted(result["seeds"]), per_seed):
        assert result["seeds"][seed_dir]["mae"] == pytest.approx(metrics["test"]["mae"], abs=1e-6)
    assert (tmp_path / "run" / "eval-test.json").exists()

    capsys.readouterr()
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(tmp_path / "run" / "seed-0"),
                "--lr", "0.01", "--no-progress"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_iemocap_task_trains_with_cross_entropy(tmp_path):
    data = write_mult_pickle(tmp_path, sizes=(32, 12, 12), iemocap=True)
    config = write_config(tmp_path, epochs=1)
    assert mcr(["train", "--data", str(data), "--preset", "iemocap", "--config", str(config), "--out",
                str(tmp_path / "run"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "iemocap"
    assert {"neutral_acc", "happy_f1", "sad_acc", "angry_f1", "mean_acc", "happy_unweighted_accuracy",
            "angry_macro_f1", "mean_unweighted_accuracy", "mean_macro_f1"} <= set(metrics["test"])
    assert set(metrics["test_confusion"]) == {"neutral", "happy", "sad", "angry"}
    assert np.asarray(metrics["test_confusion"]["happy"]["matrix"]).sum() == 12


def test_trains_on_a_feature_store_with_text_labels(tmp_path):
    from tests.pipeline.test_sources import _small_store

    store = _small_store(tmp_path / "store")
    segments = store.segments()
    segments["label"] = ["happy", "sad", "happy", "sad"]
    store.write_segments(segments)
    config = write_config(tmp_path, epochs=1)
    assert mcr(["train", "--data", str(tmp_path / "store"), "--config", str(config), "--out", str(tmp_path / "run"),
                "--no-progress"]) == 0
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["model"]["task"] == "classification" and record["model"]["n_classes"] == 2
    assert record["data"]["classes"] == ["happy", "sad"] and record["model"]["d_l"] == 5
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["valid"]) == {"acc", "f1", "unweighted_accuracy", "macro_f1", "loss"}
    assert np.asarray(metrics["valid_confusion"]["classification"]["matrix"]).sum() == 2  # v2's two segments
    assert metrics["valid_confusion"]["classification"]["classes"] == ["happy", "sad"]  # named, not 0 and 1
    assert mcr(["evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "store"), "--split", "valid"]) == 0
    evaluated = json.loads((tmp_path / "run" / "eval-valid.json").read_text())
    (seed,) = evaluated["seeds"].values()
    assert seed["unweighted_accuracy"] == metrics["valid"]["unweighted_accuracy"] and "macro_f1" in seed
    assert evaluated["confusion"]["classification"]["classes"] == ["happy", "sad"]


@pytest.mark.slow
def test_paper_schedule_trains_exactly_table_1s_epochs_at_a_constant_rate(tmp_path):
    from workflows.train import train_run
    from workflows.train_config import configure, fit_model_to_data

    model_cfg, tcfg = configure("mosi", schedule="paper")
    assert tcfg.epochs == 120 and tcfg.early_stop_patience == 0 and tcfg.lr_patience >= 10**9
    rng = np.random.default_rng(0)
    splits = {"train": planted_split(32, rng), "valid": planted_split(16, rng)}
    # a learning rate of 0 never improves on valid: the default schedule would stop early, the paper's does not
    settings = {"batch_size": 16, "lr": 0.0, "model": {"d_model": 8, "n_heads": 2, "n_layers": 1}}
    default_model, default_cfg = configure("mosi", {**settings, "early_stop_patience": 2}, epochs=6)
    done = train_run(splits, fit_model_to_data(default_model, splits["train"]), default_cfg, tmp_path / "default",
                     progress=False)
    assert done["stopped_early"] and done["epochs_run"] < 6
    paper_model, paper_cfg = configure("mosi", {**settings, "early_stop_patience": 2}, epochs=6, schedule="paper")
    done = train_run(splits, fit_model_to_data(paper_model, splits["train"]), paper_cfg, tmp_path / "paper",
                     progress=False)
    assert not done["stopped_early"] and done["epochs_run"] == 6
    lrs = {h["lr"] for h in json.loads((tmp_path / "paper" / "history.json").read_text())}
    assert lrs == {0.0}


def test_a_run_recorded_before_modality_dropout_still_resumes(tmp_path):
    import dataclasses

    from workflows.train import train_run
    from workflows.train_config import configure, fit_model_to_data

    rng = np.random.default_rng(0)
    splits = {"train": planted_split(16, rng), "valid": planted_split(8, rng)}
    model_cfg, tcfg = configure("mosi", {"batch_size": 8, "model": {"d_model": 8, "n_heads": 2, "n_layers": 1}},
                                epochs=1, cpu_threads=1)
    model_cfg = fit_model_to_data(model_cfg, splits["train"])
    train_run(splits, model_cfg, tcfg, tmp_path / "run", progress=False, log=lambda s: None)
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    del record["train"]["modality_dropout"]  # as written before the option existed: it trained without
    (tmp_path / "run" / "config.json").write_text(json.dumps(record))
    lines: list[str] = []
    assert train_run(splits, model_cfg, tcfg, tmp_path / "run", progress=False, log=lines.append)["epochs_run"] == 1
    assert lines == ["training on CPU, float32, 1 thread(s)", "resuming " + str(tmp_path / "run") + " after epoch 1"]
    with pytest.raises(ValueError, match="another configuration"):
        train_run(splits, model_cfg, dataclasses.replace(tcfg, modality_dropout=0.2), tmp_path / "run",
                  progress=False)


def test_select_on_unweighted_accuracy_keeps_the_epoch_of_the_best_validation_ua(tmp_path):
    from workflows.train import train_run
    from workflows.train_config import configure, fit_model_to_data

    rng = np.random.default_rng(0)
    splits = {name: planted_split(n, rng) for name, n in (("train", 64), ("valid", 32))}
    for s in splits.values():  # three classes from the planted signal, the middle one rarer
        s.labels = np.digitize(s.labels, [-0.8, 0.8]).astype(np.int64)
        s.task, s.classes = "classification", ["low", "mid", "high"]
    model_cfg, tcfg = configure("mosi", {"batch_size": 16, "lr": 3e-3, "model": {"d_model": 8, "n_heads": 2,
                                                                                "n_layers": 1}},
                                epochs=6, cpu_threads=1, select_on="unweighted_accuracy")
    result = train_run(splits, fit_model_to_data(model_cfg, splits["train"]), tcfg, tmp_path / "run",
                       progress=False, log=lambda _: None)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    uas = [h["val_unweighted_accuracy"] for h in history]
    assert result["best_epoch"] == int(np.argmax(uas)) + 1  # the first epoch of the best UA
    assert result["valid"]["unweighted_accuracy"] == pytest.approx(max(uas))
    with pytest.raises(ValueError, match="select_on"):  # a regression has no classes to count
        train_run({"train": planted_split(16, rng), "valid": planted_split(8, rng)},
                  fit_model_to_data(model_cfg, planted_split(16, rng)), tcfg, tmp_path / "regression",
                  progress=False)


def test_training_threads_follow_the_option_then_omp_then_the_free_cores(monkeypatch):
    from workflows.cpus import allowed_cores, free_cores, training_threads

    assert training_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert training_threads(0) == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= training_threads(0) <= allowed_cores()
    assert 1 <= free_cores(0.05) <= allowed_cores() <= (os.cpu_count() or 1)


def test_training_flushes_denormals_and_then_restores_the_setting(tmp_path):
    from workflows.cpus import denormals_are_flushed as flushed
    from workflows.cpus import denormals_flushed
    from workflows.train import train_run
    from workflows.train_config import configure, fit_model_to_data

    assert not flushed()
    with denormals_flushed():
        assert flushed()
        with denormals_flushed():
            assert flushed()
        assert flushed()  # the inner block restores what it found
    assert not flushed()

    rng = np.random.default_rng(0)
    splits = {"train": planted_split(16, rng), "valid": planted_split(8, rng)}
    model_cfg, tcfg = configure("mosi", {"batch_size": 8, "model": {"d_model": 8, "n_heads": 2, "n_layers": 1}},
                                epochs=1, cpu_threads=1)
    seen = []
    train_run(splits, fit_model_to_data(model_cfg, splits["train"]), tcfg, tmp_path / "run", progress=False,
              log=lambda line: seen.append(flushed()))
    assert seen and all(seen) and not flushed()
