"""SUM^{[i]}: the source modality update module (section 3.4, eqs. 12-16).

    Z^_s       = F_s(Z_s^{[i]})                                                    feed-forward self-update
    mu_s       = sigma(Z^_s W^_s + Z_t^{[i+1]} W_t + b^_s + b_t)                    eq. 13 (t = the same modality)
    Z_s^{[i+1]} = (1 - mu_s) (.) tanh(Z_t^{[i+1]}) + mu_s (.) Z^_s                   eq. 14 (selective memory, SMM)
    phi        = sigma([Z_s1^{[i+1]}; Z_s2^{[i+1]}] W_ds + b_ds)                    eq. 15 (one per target t)
    Z_ds^{[i+1]} = phi (.) tanh([Z_s1^{[i+1]}; Z_s2^{[i+1]}])                       eq. 16

``MCRConfig.source_update`` selects the Table 5 variants: ``"sum"`` (above), ``"sum_no_smm"`` (eq. 14 becomes
Z^_s + Z_t^{[i+1]}), ``"ffl"`` (Z_s^{[i+1]} = Z^_s and Z_ds = [Z^_s1; Z^_s2]), ``"low_level"`` (no module at all:
the sources stay the pre-processed sequences). A source whose own modality is not a target (the "[V, A -> L] Only"
rows) has no Z_t^{[i+1]} to gate against and is updated by its feed-forward layer alone.

The biases b^_s, b_t (R^{T_s x d}) and b_ds (R^{(T_s1+T_s2) x d}) are shared over time by default
(``time_bias="shared"``) or one per step up to a fixed maximum length (``"per_step"``, literal).
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import FeedForward


class TimeBias(nn.Module):
    """A bias in R^d shared over time, or (literal) one in R^{T_max x d}, sliced to the sequence length."""

    def __init__(self, d_model: int, max_len: int | None):
        super().__init__()
        self.max_len = max_len
        self.bias = nn.Parameter(torch.zeros(d_model if max_len is None else (max_len, d_model)))

    def forward(self, length: int) -> torch.Tensor:
        """-> (d,) or (length, d), broadcastable against (B, length, d)."""
        if self.max_len is None:
            return self.bias
        assert length <= self.max_len, f"time_bias='per_step' was built for length <= {self.max_len}; got {length}"
        return self.bias[:length]


class SourceUpdate(nn.Module):
    """Eqs. 13-14 for one source modality s (or its ablated forms)."""

    def __init__(self, d_model: int, d_hidden: int, *, mode: str, has_target: bool, max_len: int | None,
                 relu_dropout: float, res_dropout: float):
        super().__init__()
        self.mode = mode if has_target else "ffl"
        self.ffn = FeedForward(d_model, d_hidden, relu_dropout=relu_dropout, res_dropout=res_dropout)  # F_s
        if self.mode == "sum":
            self.w_s = nn.Linear(d_model, d_model, bias=False)  # W^_s
            self.w_t = nn.Linear(d_model, d_model, bias=False)  # W_t
            self.b_s = TimeBias(d_model, max_len)  # b^_s
            self.b_t = TimeBias(d_model, max_len)  # b_t

    def forward(self, z_s: torch.Tensor, z_t: torch.Tensor | None) -> torch.Tensor:
        """z_s = Z_s^{[i]} (B, T_s, d), z_t = Z_t^{[i+1]} (B, T_s, d) of the same modality -> Z_s^{[i+1]}."""
        z_hat = self.ffn(z_s)  # (B, T_s, d)
        if self.mode == "ffl":
            return z_hat
        assert z_t is not None and z_t.shape == z_s.shape, "SUM gates a source against its own modality's target"
        if self.mode == "sum_no_smm":
            return z_hat + z_t
        T = z_s.shape[1]
        mu = torch.sigmoid(self.w_s(z_hat) + self.w_t(z_t) + self.b_s(T) + self.b_t(T))  # eq. 13
        return (1 - mu) * torch.tanh(z_t) + mu * z_hat  # eq. 14


class SourceCombination(nn.Module):
    """Eqs. 15-16 for one target: the gated concatenation Z_ds of its two sources."""

    def __init__(self, d_model: int, *, max_len_s1: int | None, max_len_s2: int | None):
        super().__init__()
        self.w = nn.Linear(d_model, d_model, bias=False)
        # The literal b_ds in R^{(T_s1+T_s2) x d} is kept as two blocks, indexed by (source, step), so appending
        # padding to s1 does not shift the biases of s2's steps.
        self.b_s1 = TimeBias(d_model, max_len_s1)
        self.b_s2 = TimeBias(d_model, max_len_s2)

    def forward(self, z_s1: torch.Tensor, z_s2: torch.Tensor) -> torch.Tensor:
        """Z_s1^{[i+1]} (B, T_s1, d), Z_s2^{[i+1]} (B, T_s2, d) -> Z_ds^{[i+1]} (B, T_s1 + T_s2, d)."""
        z = torch.cat([z_s1, z_s2], dim=1)  # (B, T_s1 + T_s2, d)
        bias = torch.cat([self.b_s1(z_s1.shape[1]).expand(z_s1.shape[1], -1),
                          self.b_s2(z_s2.shape[1]).expand(z_s2.shape[1], -1)], dim=0)  # (T_s1 + T_s2, d)
        phi = torch.sigmoid(self.w(z) + bias)  # eq. 15
        return phi * torch.tanh(z)  # eq. 16


class SUM(nn.Module):
    """SUM^{[i]} (eq. 12): updates every source modality and builds each target's Z_ds for layer i + 1."""

    def __init__(self, d_model: int, d_hidden: int, *, sources: tuple[str, ...], targets: dict[str, tuple[str, str]],
                 mode: str, build_ds: bool, max_lens: dict[str, int | None], relu_dropout: float,
                 res_dropout: float):
        super().__init__()
        assert mode in ("sum", "sum_no_smm", "ffl"), f"SUM is not built for source_update={mode!r}"
        self.mode = mode
        self.targets = targets
        self.updates = nn.ModuleDict({
            s: SourceUpdate(d_model, d_hidden, mode=mode, has_target=s in targets, max_len=max_lens[s],
                            relu_dropout=relu_dropout, res_dropout=res_dropout) for s in sources})
        self.combine = nn.ModuleDict()
        if build_ds and mode != "ffl":
            self.combine = nn.ModuleDict({
                t: SourceCombination(d_model, max_len_s1=max_lens[s1], max_len_s2=max_lens[s2])
                for t, (s1, s2) in targets.items()})

    def forward(self, z_src: dict[str, torch.Tensor], z_tgt: dict[str, torch.Tensor], *, build_ds: bool
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Z_s^{[i]} {s: (B, T_s, d)}, Z_t^{[i+1]} {t: (B, T_t, d)}
        -> (Z_s^{[i+1]} {s: (B, T_s, d)}, Z_ds^{[i+1]} {t: (B, T_s1 + T_s2, d)})."""
        new_src = {s: update(z_src[s], z_tgt.get(s)) for s, update in self.updates.items()}
        z_ds: dict[str, torch.Tensor] = {}
        if build_ds:
            for t, (s1, s2) in self.targets.items():
                if self.mode == "ffl":
                    z_ds[t] = torch.cat([new_src[s1], new_src[s2]], dim=1)
                else:
                    z_ds[t] = self.combine[t](new_src[s1], new_src[s2])
        return new_src, z_ds
