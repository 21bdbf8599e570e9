"""A sample padded at the start (MulT's and MMSA's files) or at the end (the store) gives the output it has unpadded:
pooling takes the last real step wherever the padding is, and positions count the real steps."""
from __future__ import annotations

import pytest
import torch

from model import build_model
from model.heads import pool

from .helpers import SMALL_LENGTHS, batch, small_config

VARIANTS = {"mcr": {}, "mcr_mean_pool": {"pooling": "mean"}, "mult": {"arch": "mult", "mult_kernel": 3},
            "mcr_language_only": {"modalities": ("l",)}}


def _padded(x: torch.Tensor, extra: int, side: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``extra`` steps of large random garbage before or after the real steps, and the mask of the real ones."""
    g = torch.Generator().manual_seed(seed)
    B, T, d = x.shape
    garbage = 5 * torch.randn(B, extra, d, generator=g)
    real, pad = torch.ones(B, T, dtype=torch.bool), torch.zeros(B, extra, dtype=torch.bool)
    if side == "start":
        return torch.cat([garbage, x], dim=1), torch.cat([pad, real], dim=1)
    return torch.cat([x, garbage], dim=1), torch.cat([real, pad], dim=1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("side", ["start", "end"])
def test_padding_on_either_side_leaves_the_output_unchanged(variant, side):
    cfg = small_config(**VARIANTS[variant])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = batch(cfg, 3, SMALL_LENGTHS, seed=2)
    with torch.no_grad():
        unpadded = model(**inputs).output
        padded, masks = {}, {}
        for i, m in enumerate("lva"):
            padded[f"x_{m}"], masks[f"mask_{m}"] = _padded(inputs[f"x_{m}"], 5, side, seed=10 + i)
        out = model(**padded, **masks).output
    assert torch.allclose(out, unpadded, atol=1e-5), (out - unpadded).abs().max()


def test_start_padding_differed_before_the_fix_would_be_caught():
    """The check above can fail: shifting real steps without a mask changes the output."""
    cfg = small_config()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = batch(cfg, 2, SMALL_LENGTHS, seed=2)
    with torch.no_grad():
        unpadded = model(**inputs).output
        shifted = {k: torch.cat([torch.zeros_like(v[:, :5]), v], dim=1) for k, v in inputs.items()}
        assert not torch.allclose(model(**shifted).output, unpadded, atol=1e-5)


def test_pool_last_takes_the_last_real_step_on_both_sides():
    x = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)  # (B=2, T=4, d=1)
    end = torch.tensor([[True, True, False, False], [True, True, True, True]])
    start = torch.tensor([[False, False, True, True], [False, False, False, False]])
    assert pool(x, end, "last").reshape(-1).tolist() == [1.0, 7.0]
    assert pool(x, start, "last").reshape(-1).tolist() == [3.0, 0.0]  # no real step: zeros
