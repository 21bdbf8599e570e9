"""What the models return, how a sequence becomes one vector, and the task heads (regression / IEMOCAP / classes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import IEMOCAP_EMOTIONS


@dataclass
class ModelOutput:
    """``output``: (B, 1) regression | (B, 4, 2) iemocap | (B, n_classes) classification.

    ``attention``: None, or (with ``return_attention=True``) a dict; see ``docs/model.md`` for its layout.
    """

    output: torch.Tensor
    attention: dict[str, Any] | None = None


def pool(x: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """x (B, T, d) -> (B, d): the last real step (``"last"``) or the mean of the real steps (``"mean"``).

    The last real step is the last True of the mask, wherever the padding is (MulT's and MMSA's files pad at the
    start, the store at the end). A sample with no real step gets a zero vector.
    """
    if mask is None:
        return x[:, -1] if how == "last" else x.mean(dim=1)
    m = mask.to(x.dtype)
    if how == "mean":
        return (x * m[..., None]).sum(dim=1) / m.sum(dim=1, keepdim=True).clamp(min=1.0)
    steps = torch.arange(x.shape[1], device=x.device)  # (T,)
    last_index = (steps * mask).argmax(dim=1)  # (B,): the last real step (0 when there is none)
    last = x[torch.arange(x.shape[0], device=x.device), last_index]  # (B, d)
    return last * mask.any(dim=1)[:, None].to(x.dtype)


class OutputHead(nn.Module):
    """MulT's head: a 2-layer residual MLP on the pooled vector, then the output layer; shapes the task output."""

    def __init__(self, d_in: int, output_dim: int, task: str, *, out_dropout: float):
        super().__init__()
        self.task = task
        self.proj1 = nn.Linear(d_in, d_in)
        self.proj2 = nn.Linear(d_in, d_in)
        self.out = nn.Linear(d_in, output_dim)
        self.out_dropout = out_dropout

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (B, d_in) -> (B, 1) | (B, 4, 2) | (B, n_classes)."""
        hidden = self.proj2(F.dropout(F.relu(self.proj1(h)), p=self.out_dropout, training=self.training)) + h
        out = self.out(hidden)
        if self.task == "iemocap":
            return out.view(-1, len(IEMOCAP_EMOTIONS), 2)
        return out
