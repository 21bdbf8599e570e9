"""Shared building blocks: masked softmax, multi-head attention (eq. 1 with h heads), feed-forward layers,
sinusoidal positions and a pre-LN self-attention encoder.

Masks are ``(B, T)`` bool, True = real step. A row whose keys are all padding (a modality with no real step at all)
attends to nothing: its output is exactly 0 and its gradients are finite.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) int lengths -> (B, max_len) bool mask, True on the first ``length`` steps."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def zero_padded(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x (B, T, d) with the padded steps set to 0, so an operation that mixes time steps cannot read them."""
    return x if mask is None else x * mask[..., None].to(x.dtype)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """softmax over ``dim`` ignoring positions where ``mask`` (broadcastable to scores) is False.

    Masked positions get exactly 0; an all-masked slice gets all zeros (never NaN, finite gradients).
    """
    if mask is None:
        return torch.softmax(scores, dim=dim)
    # A finite fill (not -inf) keeps an all-masked slice finite; multiplying by the mask zeroes it.
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=dim) * mask.to(scores.dtype)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, *,
           dropout_p: float = 0.0, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T / sqrt(d_k)) v over the real keys (eq. 1), per head.

    q (B, h, T_q, d_k), k (B, h, T_k, d_k), v (B, h, T_k, d_v), key_mask (B, T_k) bool or None.
    Returns the output (B, h, T_q, d_v) and, when ``need_weights``, the weights (B, h, T_q, T_k) (before dropout).
    Uses torch's fused ``scaled_dot_product_attention`` unless the weights are asked for.
    """
    if need_weights:
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, h, T_q, T_k)
        weights = masked_softmax(scores, None if key_mask is None else key_mask[:, None, None, :])
        dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
        return dropped @ v, weights
    if key_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p), None
    has_key = key_mask.any(dim=-1)  # (B,)
    # An all-padding row would be NaN inside the fused kernel: let it see every key, then zero its output.
    safe = key_mask | ~has_key[:, None]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe[:, None, None, :], dropout_p=dropout_p)
    return out * has_key[:, None, None, None].to(out.dtype), None


class MultiHeadAttention(nn.Module):
    """h-head attention CA^mul / SA^mul (section 3.1.2): queries from one sequence, keys and values from another."""

    def __init__(self, d_model: int, n_heads: int, *, dropout: float = 0.0):
        super().__init__()
        assert d_model % n_heads == 0, f"d_model={d_model} must be divisible by n_heads={n_heads}"
        self.n_heads = n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor, key_mask: torch.Tensor | None, *,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x_q (B, T_q, d), x_kv (B, T_k, d) -> (B, T_q, d) and head-averaged weights (B, T_q, T_k) or None."""
        B, T_q, d = x_q.shape
        h = self.n_heads
        q = self.q_proj(x_q).view(B, T_q, h, d // h).transpose(1, 2)  # (B, h, T_q, d/h)
        k, v = self.kv_proj(x_kv).view(B, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)  # 2 x (B, h, T_k, d/h)
        out, weights = attend(q, k, v, key_mask, dropout_p=self.dropout if self.training else 0.0,
                              need_weights=need_weights)
        out = out.transpose(1, 2).reshape(B, T_q, d)  # (B, T_q, d)
        return self.out_proj(out), None if weights is None else weights.mean(dim=1)


class FeedForward(nn.Module):
    """Position-wise feed-forward layer with skip connection: x + Dropout(W2 Dropout(ReLU(W1 LN(x))))."""

    def __init__(self, d_model: int, d_hidden: int, *, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_model)
        self.relu_dropout = nn.Dropout(relu_dropout)
        self.res_dropout = nn.Dropout(res_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, T, d)."""
        return x + self.res_dropout(self.fc2(self.relu_dropout(F.relu(self.fc1(self.norm(x))))))


def sinusoidal_positions(length: int, d_model: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(length, d_model) sinusoidal positional embeddings of Vaswani et al. (sin on even, cos on odd features)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
    return pe.to(dtype)


class SinusoidalPositions(nn.Module):
    """Adds :func:`sinusoidal_positions` to (B, T, d) inputs; the table is cached and grown for longer inputs."""

    def __init__(self, d_model: int, initial_length: int = 512):
        super().__init__()
        self.d_model = d_model
        self.register_buffer("table", sinusoidal_positions(initial_length, d_model), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, d) -> (B, T, d) with positions added: 0..T-1, or with a mask (B, T), each real step's rank among
        the real steps, so that a sequence padded at the start gets the positions it has unpadded."""
        T = x.shape[1]
        if T > self.table.shape[0]:
            self.table = sinusoidal_positions(max(T, 2 * self.table.shape[0]), self.d_model, device=x.device)
        if mask is None:
            return x + self.table[:T].to(dtype=x.dtype)
        index = (mask.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, T): 0 for leading padding and the first step
        return x + self.table[index].to(dtype=x.dtype)


class SelfAttentionLayer(nn.Module):
    """Pre-LN transformer encoder layer: x + SA^mul(LN(x)), then the feed-forward layer with skip."""

    def __init__(self, d_model: int, n_heads: int, d_hidden: int, *, attn_dropout: float, relu_dropout: float,
                 res_dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=attn_dropout)
        self.res_dropout = nn.Dropout(res_dropout)
        self.ffn = FeedForward(d_model, d_hidden, relu_dropout=relu_dropout, res_dropout=res_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, d), mask (B, T) -> (B, T, d)."""
        y = self.norm(x)
        y, _ = self.attn(y, y, mask)
        return self.ffn(x + self.res_dropout(y))


class TransformerEncoder(nn.Module):
    """A stack of :class:`SelfAttentionLayer` with a final LayerNorm (the encoder over Z_fin, section 3.2)."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, d_hidden: int, *, attn_dropout: float,
                 relu_dropout: float, res_dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            SelfAttentionLayer(d_model, n_heads, d_hidden, attn_dropout=attn_dropout, relu_dropout=relu_dropout,
                               res_dropout=res_dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, d), mask (B, T) -> (B, T, d)."""
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)
