"""CMU_{s1,s2->t}: the cross-mutual attention reinforcement unit (section 3.3.1, eqs. 2-5).

    K_* = LN(Z_* W_K*), V_* = LN(Z_* W_V*), Q_t = LN(Z_t W_Qt)                  * in {s1, s2}
    E_{*->t} = Q_t K_*^T / sqrt(d)                                  (T_t, T_*)   latent adaptation
    E^_{s1->t} (T_t, T_s2), E^_{s2->t} (T_t, T_s1)                              source-dimension exchange
    alpha = softmax([Z_s1; Z_s2] . 1)  over the T_s1 + T_s2 real steps          eq. 3, split into alpha_s1, alpha_s2
    Z_{s1->t} = softmax(E_{s1->t} + alpha_s1 (.) E^_{s2->t}) V_s1                eq. 4
    Z_{s2->t} = softmax(E_{s2->t} + alpha_s2 (.) E^_{s1->t}) V_s2                eq. 5
    Z_ta = LN(Z_t) + Z_{s1->t} + Z_{s2->t};  Z_ta^{[i+1]} = Z_ta + PFF(Z_ta)

The exchange has two forms (``MCRConfig.exchange``):

* ``"conv"`` (literal): a Conv1d whose channels are the source time steps (T_s2 in, T_s1 out), run along the target
  time axis. Its parameters depend on the maximum source lengths, so the model only takes sequences up to them.
* ``"attention"`` (default, length-free): the map from s2's steps onto s1's steps is a learned, content-based,
  mask-aware alignment P_{s1<-s2} = softmax_{s2}((K_s1 W_x)(K_s2 W_y)^T / sqrt(d)) instead of a weight matrix indexed
  by step number: E^_{s2->t} = E_{s2->t} P^T = Q_t (P K_s2)^T / sqrt(d). Because the whole term is linear in the
  keys, eq. 4's logits equal Q_t (K_s1 + alpha_s1 (.) P K_s2)^T / sqrt(d), which runs as one fused attention call.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import FeedForward, attend, masked_softmax, zero_padded


def selective_weights(z_s1: torch.Tensor, z_s2: torch.Tensor, m_s1: torch.Tensor | None,
                      m_s2: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3: alpha = softmax over the concatenated real source steps of the feature sums.

    z_s1 (B, T_s1, d), z_s2 (B, T_s2, d) -> alpha_s1 (B, T_s1), alpha_s2 (B, T_s2); padded steps get exactly 0.
    """
    logits = torch.cat([z_s1.sum(dim=-1), z_s2.sum(dim=-1)], dim=1)  # (B, T_s1 + T_s2)
    mask = None
    if m_s1 is not None or m_s2 is not None:
        mask = torch.cat([_ones_if_none(m_s1, z_s1), _ones_if_none(m_s2, z_s2)], dim=1)
    alpha = masked_softmax(logits, mask, dim=-1)
    return alpha[:, : z_s1.shape[1]], alpha[:, z_s1.shape[1]:]


def _ones_if_none(mask: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
    return torch.ones(z.shape[:2], dtype=torch.bool, device=z.device) if mask is None else mask


class AttentionExchange(nn.Module):
    """Length-free exchange: keys of the other source re-indexed onto this source's steps, P K_other (B, T, d)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)

    def forward(self, k_self: torch.Tensor, k_other: torch.Tensor, m_other: torch.Tensor | None) -> torch.Tensor:
        """k_self (B, T_self, d), k_other (B, T_other, d) -> P_{self<-other} k_other (B, T_self, d)."""
        q = self.query(k_self)[:, None]  # (B, 1, T_self, d)
        k = self.key(k_other)[:, None]  # (B, 1, T_other, d)
        out, _ = attend(q, k, k_other[:, None], m_other)  # (B, 1, T_self, d)
        return out[:, 0]


class ConvExchange(nn.Module):
    """Literal exchange: Conv1d with the other source's max length as input channels and this source's as output."""

    def __init__(self, max_len_other: int, max_len_self: int, kernel_size: int):
        super().__init__()
        assert kernel_size % 2 == 1, f"exchange kernel {kernel_size} must be odd"
        self.max_len_other = max_len_other
        self.max_len_self = max_len_self
        self.conv = nn.Conv1d(max_len_other, max_len_self, kernel_size, padding=kernel_size // 2)

    def forward(self, e_other: torch.Tensor, t_self: int) -> torch.Tensor:
        """e_other = E_{other->t} (B, T_t, T_other), zero on padded rows/columns -> E^_{other->t} (B, T_t, T_self)."""
        T_other = e_other.shape[2]
        assert T_other <= self.max_len_other and t_self <= self.max_len_self, (
            f"exchange='conv' was built for source lengths <= ({self.max_len_other}, {self.max_len_self}); "
            f"got ({T_other}, {t_self})")
        e = F.pad(e_other, (0, self.max_len_other - T_other)).transpose(1, 2)  # (B, max_other, T_t)
        return self.conv(e)[:, :t_self].transpose(1, 2)  # (B, T_t, T_self)


class CMU(nn.Module):
    """CMU_{s1,s2->t} (eqs. 2-5) followed by the position-wise feed-forward layer with skip connection."""

    def __init__(self, d_model: int, d_hidden: int, *, mutual_attention: bool, exchange: str,
                 exchange_kernel: int = 1, max_len_s1: int | None = None, max_len_s2: int | None = None,
                 attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.d_model = d_model
        self.mutual_attention = mutual_attention
        self.exchange_form = exchange
        self.attn_dropout = attn_dropout
        self.q_proj, self.q_norm = nn.Linear(d_model, d_model, bias=False), nn.LayerNorm(d_model)
        self.k_proj = nn.ModuleList(nn.Linear(d_model, d_model, bias=False) for _ in range(2))
        self.v_proj = nn.ModuleList(nn.Linear(d_model, d_model, bias=False) for _ in range(2))
        self.k_norm = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(2))
        self.v_norm = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(2))
        self.t_norm = nn.LayerNorm(d_model)
        self.res_dropout = nn.Dropout(res_dropout)
        self.ffn = FeedForward(d_model, d_hidden, relu_dropout=relu_dropout, res_dropout=res_dropout)
        if mutual_attention:
            if exchange == "attention":
                # exchange[0] carries s2's adaptation onto s1's steps (E^_{s2->t}, eq. 4); exchange[1] the reverse.
                self.exchange = nn.ModuleList([AttentionExchange(d_model), AttentionExchange(d_model)])
            else:
                assert max_len_s1 and max_len_s2, "exchange='conv' needs the maximum source lengths"
                self.exchange = nn.ModuleList([ConvExchange(max_len_s2, max_len_s1, exchange_kernel),
                                               ConvExchange(max_len_s1, max_len_s2, exchange_kernel)])

    def forward(self, z_s1: torch.Tensor, z_s2: torch.Tensor, z_t: torch.Tensor, m_s1: torch.Tensor | None,
                m_s2: torch.Tensor | None, m_t: torch.Tensor | None, *, need_weights: bool = False
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """z_s1 (B, T_s1, d), z_s2 (B, T_s2, d), z_t (B, T_t, d) -> Z_ta^{[i+1]} (B, T_t, d) and, when
        ``need_weights``, {"cmu_s1": (B, T_t, T_s1), "cmu_s2": (B, T_t, T_s2), "alpha_s1": (B, T_s1),
        "alpha_s2": (B, T_s2)}."""
        q = self.q_norm(self.q_proj(z_t))  # (B, T_t, d)
        ks = [norm(proj(z)) for proj, norm, z in zip(self.k_proj, self.k_norm, (z_s1, z_s2))]  # (B, T_s*, d)
        vs = [norm(proj(z)) for proj, norm, z in zip(self.v_proj, self.v_norm, (z_s1, z_s2))]  # (B, T_s*, d)
        masks = (m_s1, m_s2)
        dropout_p = self.attn_dropout if self.training else 0.0
        info: dict[str, torch.Tensor] = {}
        alphas: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.mutual_attention:
            alphas = selective_weights(z_s1, z_s2, m_s1, m_s2)  # eq. 3
            if need_weights:
                info["alpha_s1"], info["alpha_s2"] = alphas

        outs = []
        if self.mutual_attention and self.exchange_form == "conv":
            outs = self._literal(q, ks, vs, masks, m_t, alphas, dropout_p, need_weights, info)
        else:
            for j in range(2):
                keys = ks[j]
                if self.mutual_attention:  # eqs. 4-5 folded into the keys: K_j + alpha_j (.) P_{j<-other} K_other
                    moved = self.exchange[j](ks[j], ks[1 - j], masks[1 - j])  # (B, T_j, d)
                    keys = (keys + alphas[j][..., None] * moved).to(q.dtype)  # alpha is float32 under autocast
                out, w = attend(q[:, None], keys[:, None], vs[j][:, None], masks[j], dropout_p=dropout_p,
                                need_weights=need_weights)  # (B, 1, T_t, d)
                outs.append(out[:, 0])
                if need_weights:
                    info[f"cmu_s{j + 1}"] = w[:, 0]
        z_ta = self.t_norm(z_t) + self.res_dropout(outs[0] + outs[1])  # (B, T_t, d)
        return self.ffn(z_ta), info

    def _literal(self, q, ks, vs, masks, m_t, alphas, dropout_p, need_weights, info) -> list[torch.Tensor]:
        """Eqs. 4-5 with the literal convolution over the source dimension (materialised T_t x T_s maps)."""
        q = zero_padded(q, m_t)  # padded target rows must not leak through the kernel along T_t
        energies = [q @ zero_padded(k, m).transpose(1, 2) / math.sqrt(self.d_model)
                    for k, m in zip(ks, masks)]  # E_{s*->t}: (B, T_t, T_s*), 0 on padded columns
        outs = []
        for j in range(2):
            e_hat = self.exchange[j](energies[1 - j], energies[j].shape[2])  # (B, T_t, T_j)
            logits = energies[j] + alphas[j][:, None, :] * e_hat
            weights = masked_softmax(logits, None if masks[j] is None else masks[j][:, None, :])
            dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
            outs.append(dropped @ vs[j])  # (B, T_t, d)
            if need_weights:
                info[f"cmu_s{j + 1}"] = weights
        return outs
