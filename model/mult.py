"""MulT baseline (Tsai et al. 2019, "Multimodal Transformer for Unaligned Multimodal Language Sequences"; the
paper's "MuT" row), after its reference code ``src/models.py`` / ``modules/transformer.py``:

    Z_m = Conv1d_m(X_m) (kernel 1, no bias)                       text dropped out (embed_dropout) first
    Z_{s->t} = CrossmodalTransformer_{s->t}(Z_t, Z_s)              six of them, ``mult_layers`` layers each
    H_t = MemoryTransformer_t([Z_{s1->t}; Z_{s2->t}])              three, 2d wide, ``mult_mem_layers`` layers
    y = Out(h + Proj2(ReLU(Proj1(h)))), h = [H_l[last]; H_a[last]; H_v[last]]

Each transformer scales its inputs by sqrt(d), adds sinusoidal positions and dropout, then runs pre-LN layers
(one LayerNorm shared by queries and keys/values, attention, residual, LN, FFN, residual) and a final LayerNorm.
Departures from the reference code: padded keys are masked and "last" means the last real step (the reference
code has no masks), and d / heads come from the shared config (the reference hard-codes d = 30).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention, SinusoidalPositions, zero_padded
from .config import MCRConfig
from .heads import ModelOutput, OutputHead, pool
from .mcr import gather_inputs

_ORDER = ("l", "a", "v")  # the reference code's order of the final concatenation


class CrossmodalLayer(nn.Module):
    """One MulT layer: x + Attn(LN(x), LN(x_kv)), then x + FFN(LN(x)) (self-attention when x_kv is None)."""

    def __init__(self, d_model: int, n_heads: int, *, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=attn_dropout)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)
        self.relu_dropout, self.res_dropout = relu_dropout, res_dropout

    def forward(self, x: torch.Tensor, x_kv: torch.Tensor | None, kv_mask: torch.Tensor | None, *,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T_t, d), x_kv (B, T_s, d) or None -> (B, T_t, d) and head-averaged weights (B, T_t, T_s)."""
        q = self.norm_attn(x)
        kv = q if x_kv is None else self.norm_attn(x_kv)
        y, w = self.attn(q, kv, kv_mask, need_weights=need_weights)
        x = x + F.dropout(y, self.res_dropout, self.training)
        y = F.dropout(F.relu(self.fc1(self.norm_ffn(x))), self.relu_dropout, self.training)
        return x + F.dropout(self.fc2(y), self.res_dropout, self.training), w


class MulTTransformer(nn.Module):
    """MulT's ``TransformerEncoder``: crossmodal when called with a source, self-attention (memory) otherwise."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, *, embed_dropout: float, attn_dropout: float,
                 relu_dropout: float, res_dropout: float):
        super().__init__()
        self.scale = math.sqrt(d_model)
        self.embed_dropout = embed_dropout
        self.positions = SinusoidalPositions(d_model)
        self.layers = nn.ModuleList(
            CrossmodalLayer(d_model, n_heads, attn_dropout=attn_dropout, relu_dropout=relu_dropout,
                            res_dropout=res_dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def _embed(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return F.dropout(self.positions(self.scale * x, mask), self.embed_dropout, self.training)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, x_src: torch.Tensor | None = None,
                src_mask: torch.Tensor | None = None, *, need_weights: bool = False
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, T_t, d) [, x_src (B, T_s, d)] -> (B, T_t, d) and the per-layer weights when asked."""
        x = self._embed(x, mask)
        kv, kv_mask = (None, mask) if x_src is None else (self._embed(x_src, src_mask), src_mask)
        maps = []
        for layer in self.layers:
            x, w = layer(x, kv, kv_mask, need_weights=need_weights)
            if need_weights:
                maps.append(w)
        return self.norm(x), maps


class MulT(nn.Module):
    """The MulT baseline with the same ``forward`` signature and :class:`ModelOutput` as MCR."""

    def __init__(self, cfg: MCRConfig):
        super().__init__()
        assert cfg.arch == "mult", f"MulT built from a config with arch={cfg.arch!r}"
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        assert cfg.mult_kernel % 2 == 1, f"mult_kernel={cfg.mult_kernel} must be odd"
        self.proj = nn.ModuleDict({
            m: nn.Conv1d(cfg.input_dim(m), d, cfg.mult_kernel, padding=cfg.mult_kernel // 2, bias=False)
            for m in _ORDER})
        drops = dict(embed_dropout=cfg.embed_dropout, attn_dropout=cfg.attn_dropout,
                     relu_dropout=cfg.relu_dropout, res_dropout=cfg.res_dropout)
        self.crossmodal = nn.ModuleDict({
            f"{s}_to_{t}": MulTTransformer(d, cfg.n_heads, cfg.mult_layers, **drops)
            for t in _ORDER for s in _ORDER if s != t})
        self.memory = nn.ModuleDict({
            t: MulTTransformer(2 * d, cfg.n_heads, cfg.mult_mem_layers, **drops) for t in _ORDER})
        self.head = OutputHead(6 * d, cfg.output_dim, cfg.task, out_dropout=cfg.out_dropout)

    def forward(self, x_l: torch.Tensor, x_v: torch.Tensor, x_a: torch.Tensor, mask_l: torch.Tensor | None = None,
                mask_v: torch.Tensor | None = None, mask_a: torch.Tensor | None = None,
                return_attention: bool = False) -> ModelOutput:
        """Same contract as :meth:`model.mcr.MCR.forward`; attention maps keyed ``"{s}_to_{t}"`` (per layer)."""
        xs, masks = gather_inputs(self.cfg, (x_l, x_v, x_a), (mask_l, mask_v, mask_a))
        xs["l"] = F.dropout(xs["l"], self.cfg.embed_dropout, self.training)
        z = {m: self.proj[m](zero_padded(xs[m], masks[m]).transpose(1, 2)).transpose(1, 2)
             for m in _ORDER}  # {m: (B, T_m, d)}
        pooled, maps = [], {}
        for t in _ORDER:
            parts = []
            for s in _ORDER:
                if s == t:
                    continue
                h, w = self.crossmodal[f"{s}_to_{t}"](z[t], masks[t], z[s], masks[s], need_weights=return_attention)
                parts.append(h)  # (B, T_t, d)
                if return_attention:
                    maps[f"{s}_to_{t}"] = w
            h, _ = self.memory[t](torch.cat(parts, dim=-1), masks[t])  # (B, T_t, 2d)
            pooled.append(pool(h, masks[t], "last"))
        output = self.head(torch.cat(pooled, dim=-1))  # (B, 6d) -> task output
        attention: dict[str, Any] | None = {"crossmodal": maps} if return_attention else None
        return ModelOutput(output=output, attention=attention)
