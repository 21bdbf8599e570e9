"""Forward and backward at the paper's shapes: every parameter gets a finite gradient; outputs per task."""
from __future__ import annotations

import pytest
import torch

from model import PRESETS, build_model, count_parameters

from .helpers import batch, grads_missing, small_config

MOSI_LENGTHS = {"l": 50, "v": 500, "a": 375}  # unaligned CMU-MOSI (MulT's release)
IEMOCAP_LENGTHS = {"l": 20, "v": 500, "a": 400}  # unaligned IEMOCAP (MulT's release)


def _forward_backward(cfg, B, lengths, masks=None):
    torch.manual_seed(0)
    model = build_model(cfg).train()
    out = model(**batch(cfg, B, lengths), **(masks or {}))
    out.output.float().square().mean().backward()
    return model, out


@pytest.mark.slow
def test_mcr_forward_backward_at_unaligned_mosi_shapes():
    cfg = PRESETS["mosi"].model
    assert (cfg.d_l, cfg.d_a, cfg.d_v) == (300, 74, 35)
    model, out = _forward_backward(cfg, 8, MOSI_LENGTHS)
    assert out.output.shape == (8, 1)
    assert torch.isfinite(out.output).all()
    assert grads_missing(model) == []


@pytest.mark.slow
def test_mcr_forward_backward_at_iemocap_shapes_with_ragged_masks():
    cfg = PRESETS["iemocap"].model
    B = 8
    g = torch.Generator().manual_seed(3)
    masks = {f"mask_{m}": torch.arange(T)[None, :] < torch.randint(1, T + 1, (B, 1), generator=g)
             for m, T in IEMOCAP_LENGTHS.items()}
    model, out = _forward_backward(cfg, B, IEMOCAP_LENGTHS, masks)
    assert out.output.shape == (B, 4, 2)
    assert torch.isfinite(out.output).all()
    assert grads_missing(model) == []


@pytest.mark.parametrize("task, shape", [("regression", (3, 1)), ("iemocap", (3, 4, 2)),
                                         ("classification", (3, 5))])
@pytest.mark.parametrize("arch", ["mcr", "mult"])
def test_task_heads_and_every_gradient(arch, task, shape):
    cfg = small_config(arch=arch, task=task, n_classes=5)
    model, out = _forward_backward(cfg, 3, {"l": 7, "v": 11, "a": 9})
    assert out.output.shape == shape
    assert grads_missing(model) == []


def test_mult_is_the_six_plus_three_transformer_baseline():
    cfg = small_config(arch="mult", mult_layers=3, mult_mem_layers=2)
    model = build_model(cfg)
    assert sorted(model.crossmodal) == ["a_to_l", "a_to_v", "l_to_a", "l_to_v", "v_to_a", "v_to_l"]
    assert all(len(t.layers) == 3 for t in model.crossmodal.values())
    assert sorted(model.memory) == ["a", "l", "v"] and all(len(t.layers) == 2 for t in model.memory.values())
    assert model.head.proj1.in_features == 6 * cfg.d_model
    assert count_parameters(model) > 0


def test_accepts_any_sequence_length_at_inference():
    cfg = small_config()
    model = build_model(cfg).eval()
    for lengths in ({"l": 1, "v": 2, "a": 3}, {"l": 40, "v": 90, "a": 70}):
        with torch.no_grad():
            out = model(**batch(cfg, 2, lengths))
        assert out.output.shape == (2, 1) and torch.isfinite(out.output).all()


def test_wrong_feature_size_is_reported():
    cfg = small_config()
    model = build_model(cfg)
    x = batch(cfg, 2, {"l": 4, "v": 5, "a": 6})
    x["x_v"] = torch.randn(2, 5, cfg.d_v + 1)
    with pytest.raises(AssertionError, match="x_v must be"):
        model(**x)
