"""The moving average of the weights (``TrainConfig.weight_average``): its rule, that training validates and keeps
the averaged weights, and that a run stopped mid-way resumes to the same end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.workflows.synthetic import planted_split
from workflows.weight_average import WeightAverage


def test_the_average_follows_the_decay_rule_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.5)
    expected = model.weight.detach().clone()
    for step in range(1, 40):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        average.update(model)
        decay = min(0.5, (1 + step) / (10 + step))  # 0.18, 0.25, ... then the cap from step 8
        expected = decay * expected + (1 - decay) * model.weight.detach()
        assert torch.allclose(average.module.weight, expected, atol=1e-6), step
    assert average.steps == 39 and not average.module.weight.requires_grad and not average.module.training
    assert not torch.equal(average.module.weight, model.weight)  # a copy, not the model
    with pytest.raises(AssertionError, match="decay"):
        WeightAverage(model, decay=1.0)


def _splits():
    rng = np.random.default_rng(0)
    return {"train": planted_split(96, rng), "valid": planted_split(32, rng)}


def _configure(epochs: int):
    from workflows.train_config import configure, fit_model_to_data

    splits = _splits()
    model_cfg, tcfg = configure("mosi", {"batch_size": 16, "lr": 3e-3, "weight_average": 0.9,
                                         "model": {"d_model": 8, "n_heads": 2, "n_layers": 1}},
                                epochs=epochs, cpu_threads=1)
    return splits, fit_model_to_data(model_cfg, splits["train"]), tcfg


def test_training_validates_and_keeps_the_averaged_weights(tmp_path):
    from model import build_model
    from workflows.train import _evaluate, train_run

    splits, model_cfg, tcfg = _configure(epochs=3)
    result = train_run(splits, model_cfg, tcfg, tmp_path / "run", progress=False, log=lambda _: None)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    last = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    averaged = {k[len("average."):]: v for k, v in last.items() if k.startswith("average.")}
    raw = {k[len("model."):]: v for k, v in last.items() if k.startswith("model.")}
    assert averaged.keys() == raw.keys() and any(not torch.equal(averaged[k], raw[k]) for k in raw)
    from pipeline.arrays import normalize
    from workflows.checkpoint import load_arrays

    record = json.loads((tmp_path / "run" / "config.json").read_text())
    stats = load_arrays(tmp_path / "run" / "normalizer.safetensors", record["normalizer_sha256"],
                        tmp_path / "run" / "config.json")
    valid = normalize(splits["valid"], stats)
    best = load_file(str(tmp_path / "run" / "checkpoints" / "best.safetensors"))
    losses = {}
    for name, tensors in (("average", averaged), ("model", raw), ("best", best)):
        model = build_model(model_cfg)
        model.load_state_dict(tensors)
        losses[name] = _evaluate(model.eval(), valid, "regression", 256, False)[0]
    assert losses["average"] == pytest.approx(history[-1]["val_loss"], abs=1e-6)  # what was validated
    assert losses["model"] != pytest.approx(history[-1]["val_loss"], abs=1e-6)
    assert losses["best"] == pytest.approx(history[result["best_epoch"] - 1]["val_loss"], abs=1e-6)  # and kept


def test_a_run_stopped_mid_way_resumes_the_average_to_the_same_end(tmp_path, monkeypatch):
    import workflows.train as train_module

    splits, model_cfg, tcfg = _configure(epochs=4)
    train_module.train_run(splits, model_cfg, tcfg, tmp_path / "straight", progress=False, log=lambda _: None)

    batches = train_module.length_batches
    calls = []

    def stop_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return batches(*args, **kwargs)

    monkeypatch.setattr(train_module, "length_batches", stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_module.train_run(splits, model_cfg, tcfg, tmp_path / "stopped", progress=False, log=lambda _: None)
    monkeypatch.setattr(train_module, "length_batches", batches)
    lines: list[str] = []
    train_module.train_run(splits, model_cfg, tcfg, tmp_path / "stopped", progress=False, log=lines.append)
    assert f"resuming {tmp_path / 'stopped'} after epoch 2" in lines
    for name in ("best", "last"):
        a = load_file(str(tmp_path / "straight" / "checkpoints" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "stopped" / "checkpoints" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), name
    assert json.loads((tmp_path / "stopped" / "checkpoints" / "last.json").read_text())["average_steps"] == 4 * 6
