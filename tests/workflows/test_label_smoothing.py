"""TrainConfig.label_smoothing: the training loss of a classification is the smoothed cross-entropy, the validation
loss stays the plain one, 0 trains exactly as before, and the option is bounded and refused for a regression."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.workflows.synthetic import TINY_MODEL, planted_split
from workflows.train_config import configure


def _three_classes(n: int, rng: np.random.Generator):
    split = planted_split(n, rng)
    split.labels = np.digitize(split.labels, [-0.8, 0.8]).astype(np.int64)
    split.task, split.classes = "classification", ["low", "mid", "high"]
    return split


def _losses(splits, smoothing: float, out) -> tuple[list[float], list[float]]:
    """(train losses, validation losses) per epoch of a run at learning rate 0: its weights never move, so runs of
    the same seed see the same outputs and differ only in the loss they compute."""
    from workflows.train import train_run
    from workflows.train_config import fit_model_to_data

    model_cfg, tcfg = configure("mosi", {"batch_size": 8, "lr": 0.0, "model": TINY_MODEL}, epochs=2, cpu_threads=1,
                                label_smoothing=smoothing)
    train_run(splits, fit_model_to_data(model_cfg, splits["train"]), tcfg, out, progress=False, log=lambda _: None)
    history = json.loads((out / "history.json").read_text())
    return [h["train_loss"] for h in history], [h["val_loss"] for h in history]


def test_the_training_loss_is_the_smoothed_cross_entropy_and_validation_the_plain_one(tmp_path):
    rng = np.random.default_rng(0)
    splits = {"train": _three_classes(24, rng), "valid": _three_classes(12, rng)}
    (plain, plain_val), (half, half_val), (full, full_val) = (
        _losses(splits, eps, tmp_path / f"ls-{eps}") for eps in (0.0, 0.2, 0.4))
    # (1 - eps) CE + eps * mean_k(-log p_k): affine in eps, so eps = 0.2 lies halfway between 0 and 0.4
    assert full != pytest.approx(plain, abs=1e-4)
    assert half == pytest.approx([(p + f) / 2 for p, f in zip(plain, full)], abs=1e-5)
    assert plain_val == half_val == full_val  # validation: the plain cross-entropy, whatever the smoothing


def test_it_is_bounded_off_in_the_presets_and_refused_for_a_regression(tmp_path):
    from workflows.train import train_run
    from workflows.train_config import fit_model_to_data

    assert all(configure(p)[1].label_smoothing == 0.0 for p in ("mosi", "mosei", "iemocap"))
    assert configure("iemocap", {"label_smoothing": 0.1})[1].label_smoothing == 0.1
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="label_smoothing"):
            configure("iemocap", {"label_smoothing": bad})
    rng = np.random.default_rng(1)
    model_cfg, tcfg = configure("mosi", {"batch_size": 8, "model": TINY_MODEL}, epochs=1, label_smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        train_run({"train": planted_split(16, rng), "valid": planted_split(8, rng)},
                  fit_model_to_data(model_cfg, planted_split(16, rng)), tcfg, tmp_path / "regression",
                  progress=False)
