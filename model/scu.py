"""SCU_{[s1,s2]->t}: the self-cross attention reinforcement unit (section 3.3.2, eqs. 6-11).

    Z_{ds->t} = CA^mul(LN(Z_ds), LN(Z_t))          eq. 7   (Z_ds = [Z_s1; Z_s2], (T_s1 + T_s2, d))
    Z'_t      = SA^mul(LN(Z_t))                    eq. 8
    beta_*    = U^T (W_* Z^_* + b_*)               eq. 9   * in {ds->t, t}
    gamma_*   = softmax over the two beta_*        eq. 10
    Z_tb      = sum_* gamma_* (.) Z_*              eq. 11; Z_tb^{[i+1]} = Z_tb + PFF(Z_tb)

Eq. 9 has two forms (``MCRConfig.scu_attention``): ``"flat"`` is literal (Z^_* is the (T_t d)-vector of the whole
sequence, W_* in R^{T_t d x T_t d}; needs a fixed max T_t and only fits in memory for short targets), ``"pooled"``
(default) ties W_* to one d x d block per step and U to one d-vector per step (W = I_T (x) W_d, U = 1_T (x) u),
averaged over the real steps so that beta does not grow with the length.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import FeedForward, MultiHeadAttention, zero_padded

LITERAL_PARAM_LIMIT = 200_000_000
"""Largest parameter count the literal (flat) eq. 9 may allocate in one model (about 0.8 GB of float32)."""


def flat_attention_params(max_len_t: int, d_model: int) -> int:
    """Parameters of one literal eq. 9 layer: two W_* (T d x T d) with biases, and U."""
    n = max_len_t * d_model
    return 2 * (n * n + n) + n


class PooledAttentionLayer(nn.Module):
    """Eqs. 9-10 with per-step W_* (d x d), b_* (d) and u (d): beta_* = mean_{real tau} u^T (W_* z_tau + b_*)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.w = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(2))
        self.u = nn.Linear(d_model, 1, bias=False)

    def forward(self, branches: list[torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
        """2 x (B, T, d) -> gamma (B, 2)."""
        betas = []
        for w, z in zip(self.w, branches):
            score = self.u(w(z))[..., 0]  # (B, T)
            if mask is None:
                betas.append(score.mean(dim=1))
            else:
                m = mask.to(score.dtype)
                betas.append((score * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0))
        return torch.softmax(torch.stack(betas, dim=1), dim=1)  # (B, 2)


class FlatAttentionLayer(nn.Module):
    """Literal eqs. 9-10: beta_* = U^T (W_* vec(Z_*) + b_*), W_* in R^{T d x T d}, padded steps zeroed."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        n = max_len * d_model
        self.w = nn.ModuleList(nn.Linear(n, n) for _ in range(2))
        self.u = nn.Linear(n, 1, bias=False)

    def forward(self, branches: list[torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
        """2 x (B, T, d) -> gamma (B, 2)."""
        B, T, _ = branches[0].shape
        assert T <= self.max_len, f"scu_attention='flat' was built for target length <= {self.max_len}; got {T}"
        betas = []
        for w, z in zip(self.w, branches):
            flat = F.pad(zero_padded(z, mask), (0, 0, 0, self.max_len - T)).reshape(B, -1)  # (B, T_max d)
            betas.append(self.u(w(flat))[:, 0])  # (B,)
        return torch.softmax(torch.stack(betas, dim=1), dim=1)  # (B, 2)


class SCU(nn.Module):
    """SCU_{[s1,s2]->t} (eqs. 6-11) followed by the position-wise feed-forward layer with skip connection."""

    def __init__(self, d_model: int, n_heads: int, d_hidden: int, *, attention_layer: bool, form: str,
                 max_len_t: int | None = None, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.ds_norm = nn.LayerNorm(d_model)
        self.t_norm = nn.LayerNorm(d_model)
        self.cross = MultiHeadAttention(d_model, n_heads, dropout=attn_dropout)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=attn_dropout)
        self.res_dropout = nn.Dropout(res_dropout)
        self.attention_layer: nn.Module | None = None
        if attention_layer:
            if form == "flat":
                assert max_len_t, "scu_attention='flat' needs the maximum target length"
                self.attention_layer = FlatAttentionLayer(d_model, max_len_t)
            else:
                self.attention_layer = PooledAttentionLayer(d_model)
        self.ffn = FeedForward(d_model, d_hidden, relu_dropout=relu_dropout, res_dropout=res_dropout)

    def forward(self, z_ds: torch.Tensor, z_t: torch.Tensor, m_ds: torch.Tensor | None, m_t: torch.Tensor | None,
                *, need_weights: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """z_ds (B, T_s1 + T_s2, d), z_t (B, T_t, d) -> Z_tb^{[i+1]} (B, T_t, d) and, when ``need_weights``,
        {"scu_cross": (B, T_t, T_s1 + T_s2), "scu_self": (B, T_t, T_t), "scu_gamma": (B, 2)} (head-averaged)."""
        zt = self.t_norm(z_t)
        cross, w_cross = self.cross(zt, self.ds_norm(z_ds), m_ds, need_weights=need_weights)  # eq. 7
        own, w_self = self.self_attn(zt, zt, m_t, need_weights=need_weights)  # eq. 8
        branches = [self.res_dropout(cross), self.res_dropout(own)]  # 2 x (B, T_t, d)
        info: dict[str, torch.Tensor] = {}
        if self.attention_layer is None:  # "w/o Attention Layer": the two branches are summed
            z_tb = branches[0] + branches[1]
        else:
            gamma = self.attention_layer(branches, m_t)  # (B, 2), eqs. 9-10
            z_tb = gamma[:, 0, None, None] * branches[0] + gamma[:, 1, None, None] * branches[1]  # eq. 11
            if need_weights:
                info["scu_gamma"] = gamma
        if need_weights:
            info["scu_cross"], info["scu_self"] = w_cross, w_self
        return self.ffn(z_tb), info
