"""Modality dropout (TrainConfig.modality_dropout): whole modalities per sample, at the expected rate, never all
of them, a function of (seed, epoch, batch) alone; masked inputs give finite losses and gradients; runs resume."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from tests.workflows.synthetic import TINY_MODEL, planted_split, write_config, write_mult_pickle
from workflows.cli import main as mcr
from workflows.inference import batch_inputs
from workflows.train import batch_dropout, drop_modalities, modality_dropout_mask
from workflows.train_config import TrainConfig, configure


@pytest.mark.parametrize("p", [0.3, 0.5, 0.9])
def test_rate_per_modality_and_never_all_three(p):
    dropped = modality_dropout_mask(np.random.default_rng(0), 200_000, p)
    assert dropped.shape == (200_000, 3) and dropped.dtype == bool
    assert not dropped.all(1).any()  # something is always left
    expected = p - p ** 3 / 3  # a sample that would lose all three keeps one of them, chosen uniformly
    assert np.abs(dropped.mean(0) - expected).max() < 0.005, (dropped.mean(0), expected)
    # independent per modality, apart from the "keep one" rule: two dropped together at about p^2
    assert abs((dropped[:, 0] & dropped[:, 1]).mean() - (p * p - p ** 3 * 2 / 3)) < 0.005


def test_only_the_models_modalities_and_never_the_only_one():
    rng = np.random.default_rng(1)
    assert not modality_dropout_mask(rng, 1000, 0.0).any()
    assert not modality_dropout_mask(rng, 1000, 0.9, used=(0,)).any()  # a unimodal model keeps its modality
    two = modality_dropout_mask(rng, 50_000, 0.5, used=(0, 2))
    assert not two[:, 1].any() and not two[:, [0, 2]].all(1).any()
    assert np.abs(two[:, [0, 2]].mean(0) - (0.5 - 0.25 / 2)).max() < 0.01


def test_deterministic_in_seed_epoch_and_batch():
    tcfg = TrainConfig(seed=3, modality_dropout=0.4)
    a = batch_dropout(tcfg, 2, 5, 64, ("l", "v", "a"))
    assert np.array_equal(a, batch_dropout(tcfg, 2, 5, 64, ("l", "v", "a")))
    others = [batch_dropout(tcfg, 2, 6, 64, ("l", "v", "a")), batch_dropout(tcfg, 3, 5, 64, ("l", "v", "a")),
              batch_dropout(TrainConfig(seed=4, modality_dropout=0.4), 2, 5, 64, ("l", "v", "a"))]
    assert all(not np.array_equal(a, o) for o in others)
    # the draws are the trainer's own stream, apart from the epoch's shuffling (default_rng([seed, epoch]))
    assert not np.array_equal(a, modality_dropout_mask(np.random.default_rng([3, 2]), 64, 0.4))
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    batch_dropout(tcfg, 2, 5, 64, ("l", "v", "a"))
    assert torch.equal(torch.rand(1), before)  # the model's own dropout RNG is left alone


def test_drop_modalities_masks_whole_modalities_of_the_chosen_samples():
    split = planted_split(6, np.random.default_rng(0))
    inputs, _ = batch_inputs(split, np.arange(6), torch.device("cpu"))
    kept = [t.clone() for t in inputs]
    dropped = np.zeros((6, 3), bool)
    dropped[0, 0] = dropped[1, 1] = dropped[2, 2] = True
    dropped[3, [0, 2]] = True
    out = drop_modalities(inputs, dropped)
    assert all(torch.equal(a, b) for a, b in zip(inputs, kept))  # the inputs are not changed in place
    for j in range(3):
        x, mask = out[j], out[3 + j]
        for i in range(6):
            if dropped[i, j]:
                assert not mask[i].any() and not x[i].any()
            else:
                assert torch.equal(mask[i], kept[3 + j][i]) and torch.equal(x[i], kept[j][i])


def _dropped(case: str) -> np.ndarray:
    dropped = np.zeros((8, 3), bool)
    if case == "per_sample":
        dropped[[0, 1, 2], [0, 1, 2]] = True  # one modality each
        dropped[3, [0, 1]] = dropped[4, [1, 2]] = dropped[5, [0, 2]] = True  # two of three; 6, 7 keep all
    else:  # the whole batch without visual (all its steps masked), some samples without a second one too
        dropped[:, 1] = True
        dropped[0, 0] = dropped[1, 2] = True
    return dropped


@pytest.mark.parametrize("case", ["per_sample", "whole_batch"])
@pytest.mark.parametrize("arch", ["mcr", "mult"])
def test_masked_out_modalities_give_finite_loss_and_gradients(arch, case):
    from model import build_model
    from workflows.train import _task_loss
    from workflows.train_config import fit_model_to_data

    split = planted_split(8, np.random.default_rng(2))
    model_cfg, _ = configure("mosi", {"model": TINY_MODEL})
    model_cfg = fit_model_to_data(model_cfg.replace(arch=arch, mult_layers=1, mult_mem_layers=1), split)
    torch.manual_seed(0)
    model = build_model(model_cfg).train()
    inputs, labels = batch_inputs(split, np.arange(8), torch.device("cpu"))
    output = model(*drop_modalities(inputs, _dropped(case))).output
    assert torch.isfinite(output).all()
    loss = _task_loss("regression", output, labels)
    loss.backward()
    assert torch.isfinite(loss)
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert bad == []


def test_configure_sets_it_and_the_presets_leave_it_off():
    assert configure("mosi")[1].modality_dropout == 0.0  # off in the paper's presets
    assert configure("iemocap")[1].modality_dropout == 0.0 and configure("mosei")[1].modality_dropout == 0.0
    assert configure("mosi", {"modality_dropout": 0.25})[1].modality_dropout == 0.25
    assert configure("mosi", {"train": {"modality_dropout": 0.25}}, modality_dropout=0.5)[1].modality_dropout == 0.5
    with pytest.raises(ValueError, match="modality_dropout"):
        configure("mosi", modality_dropout=1.0)


@pytest.mark.slow
def test_mcr_train_modality_dropout_flag(tmp_path):
    data = write_mult_pickle(tmp_path, sizes=(24, 8, 8))
    config = write_config(tmp_path, epochs=1)
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(tmp_path / "run"),
                "--modality-dropout", "0.5", "--no-progress"]) == 0
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["train"]["modality_dropout"] == 0.5
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert set(history[0]["dropped"]) == {"l", "v", "a"}


@pytest.mark.slow
def test_tiny_run_with_dropout_finishes_finite_and_resumes_exactly(tmp_path):
    from workflows.train import train_run
    from workflows.train_config import fit_model_to_data

    rng = np.random.default_rng(0)
    splits = {"train": planted_split(96, rng), "valid": planted_split(24, rng), "test": planted_split(24, rng)}
    model_cfg, tcfg = configure("mosi", {"batch_size": 16, "lr": 3e-3, "model": TINY_MODEL}, epochs=4,
                                cpu_threads=1, modality_dropout=0.5)
    model_cfg = fit_model_to_data(model_cfg, splits["train"])

    def copy_after_epoch_2(line: str) -> None:  # the checkpoint of epoch 2 is on disk when its line is logged
        if line.startswith("epoch 2:"):
            shutil.copytree(tmp_path / "straight", tmp_path / "resumed")

    result = train_run(splits, model_cfg, tcfg, tmp_path / "straight", progress=False, log=copy_after_epoch_2)
    history = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert len(history) == 4 and all(np.isfinite([h["train_loss"], h["val_loss"]]).all() for h in history)
    assert np.isfinite(result["test"]["mae"])
    rates = np.array([list(h["dropped"].values()) for h in history])
    assert np.abs(rates.mean() - (0.5 - 0.125 / 3)) < 0.1  # 4 x 96 samples per modality

    lines: list[str] = []
    train_run(splits, model_cfg, tcfg, tmp_path / "resumed", progress=False, log=lines.append)
    assert any(line.startswith("resuming") and line.endswith("after epoch 2") for line in lines)
    resumed = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert [h["val_loss"] for h in resumed] == pytest.approx([h["val_loss"] for h in history], abs=1e-6)
    assert [h["dropped"] for h in resumed] == [h["dropped"] for h in history]
    a = load_file(str(tmp_path / "straight" / "checkpoints" / "last.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
