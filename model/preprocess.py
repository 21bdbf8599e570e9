"""Pre-processing of each modality (section 3.2): temporal Conv1d to the common size d, positional embedding,
dropout.

Z_m = Dropout(Conv1d_m(X_m) + PE), X_m (B, T_m, d_m) -> Z_m (B, T_m, d). Padded steps are zeroed before the
convolution, so the last real step sees the same zero neighbour whether or not padding follows it.

Before that, a long stream may be brought to a lower rate (:func:`mean_pool_steps`, ``MCRConfig.pool_m``; a
deviation from the paper, docs/model.md).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .attention import SinusoidalPositions, zero_padded


def mean_pool_steps(x: torch.Tensor, mask: torch.Tensor | None, k: int
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every ``k`` consecutive steps averaged into one, over their real steps only.

    x (B, T, d), mask (B, T) bool or None (all real) -> (B, ceil(T / k), d), (B, ceil(T / k)) bool: a pooled step
    is real when any of its k steps is; a pooled step of padding only is 0. Windows start at step 0, so with the
    padding at the end (the store) a sample of n real steps keeps ceil(n / k) real pooled steps.
    """
    if k == 1:
        return x, mask
    B, T, d = x.shape
    pad = -T % k
    real = torch.ones(B, T, dtype=torch.bool, device=x.device) if mask is None else mask
    weights = torch.nn.functional.pad(real.to(x.dtype), (0, pad))  # (B, T + pad)
    x = torch.nn.functional.pad(x * weights[:, :T, None], (0, 0, 0, pad))  # padding zeroed, then padded to k
    sums = x.reshape(B, -1, k, d).sum(2)  # (B, T', d)
    counts = weights.reshape(B, -1, k).sum(2)  # (B, T')
    pooled = sums / counts.clamp(min=1.0)[..., None]
    return pooled, (counts > 0 if mask is not None else None)


class ModalityPreprocess(nn.Module):
    """Conv1d(d_m -> d, kernel k, 'same' padding) + sinusoidal positions (+ optional sqrt(d) scale) + dropout."""

    def __init__(self, d_in: int, d_model: int, kernel_size: int, *, dropout: float, bias: bool = False,
                 scale_embedding: bool = False):
        super().__init__()
        assert kernel_size % 2 == 1, f"kernel size {kernel_size} must be odd so the output keeps the input length"
        self.conv = nn.Conv1d(d_in, d_model, kernel_size, padding=kernel_size // 2, bias=bias)
        self.scale = math.sqrt(d_model) if scale_embedding else 1.0
        self.positions = SinusoidalPositions(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, d_in), mask (B, T) -> (B, T, d)."""
        z = self.conv(zero_padded(x, mask).transpose(1, 2)).transpose(1, 2)  # (B, T, d)
        return self.dropout(self.positions(self.scale * z, mask))


class Preprocess(nn.Module):
    """One :class:`ModalityPreprocess` per modality of ``modalities`` (kernel sizes from Table 1)."""

    def __init__(self, modalities: tuple[str, ...], input_dims: dict[str, int], kernels: dict[str, int],
                 d_model: int, *, dropout: float, bias: bool = False, scale_embedding: bool = False):
        super().__init__()
        self.per_modality = nn.ModuleDict({
            m: ModalityPreprocess(input_dims[m], d_model, kernels[m], dropout=dropout, bias=bias,
                                  scale_embedding=scale_embedding) for m in modalities})

    def forward(self, xs: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """{m: (B, T_m, d_m)} -> {m: (B, T_m, d)}."""
        return {m: layer(xs[m], masks[m]) for m, layer in self.per_modality.items()}
