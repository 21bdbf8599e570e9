"""Small random batches for the model tests (real tensors, no fixtures from disk)."""
from __future__ import annotations

import torch

from model import MCRConfig

SMALL = dict(d_l=12, d_v=5, d_a=6, d_model=8, n_heads=2, n_layers=2, mult_layers=2, mult_mem_layers=1)
SMALL_LENGTHS = {"l": 7, "v": 11, "a": 9}


def small_config(**changes) -> MCRConfig:
    """A tiny but complete MCR config (every module present) for fast tests."""
    return MCRConfig(**{**SMALL, **changes})


def batch(cfg: MCRConfig, B: int, lengths: dict[str, int], *, seed: int = 0) -> dict[str, torch.Tensor]:
    """{"x_l", "x_v", "x_a"}: random (B, T_m, d_m) float32 inputs."""
    g = torch.Generator().manual_seed(seed)
    return {f"x_{m}": torch.randn(B, lengths[m], cfg.input_dim(m), generator=g) for m in ("l", "v", "a")}


def pad(x: torch.Tensor, mask: torch.Tensor | None, extra: int, *, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Append ``extra`` steps of large random garbage (not zeros: padding must be ignored, whatever it holds)."""
    g = torch.Generator().manual_seed(seed)
    B, T, d = x.shape
    mask = torch.ones(B, T, dtype=torch.bool) if mask is None else mask
    garbage = 5 * torch.randn(B, extra, d, generator=g)
    return torch.cat([x, garbage], dim=1), torch.cat([mask, torch.zeros(B, extra, dtype=torch.bool)], dim=1)


def grads_missing(model: torch.nn.Module) -> list[str]:
    """Names of parameters whose gradient is None or not finite after a backward pass."""
    return [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
