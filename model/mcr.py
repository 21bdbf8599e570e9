"""MCR: target and source modality co-reinforcement (Yang et al. 2023, section 3.2, Fig. 1(b)).

    Z_m^{[0]} = Preprocess_m(X_m)                                   section 3.2; the sources start as a copy
    Z_ta^{[i+1]} = CMU(Z_s1^{[i]}, Z_s2^{[i]}, Z_t^{[i]})             eq. 2
    Z_tb^{[i+1]} = SCU(Z_ds^{[i]}, Z_t^{[i]})                          eq. 6
    Z_t^{[i+1]} = Z_ta^{[i+1]} + Z_tb^{[i+1]}
    Z_s^{[i+1]}, Z_ds^{[i+1]} = SUM^{[i]}(Z_t^{[i+1]}, Z_s^{[i]})      eq. 12 (only between layers: the last layer's
                                                                      sources would feed nothing)
    Z_fin = Encoder([Z_L; Z_V; Z_A]) -> pooled per modality -> head
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .attention import TransformerEncoder
from .cmu import CMU
from .config import MCRConfig
from .heads import ModelOutput, OutputHead, pool
from .preprocess import Preprocess, mean_pool_steps
from .scu import LITERAL_PARAM_LIMIT, SCU, flat_attention_params
from .source_update import SUM


def _cat_masks(masks: list[torch.Tensor | None], lengths: list[int], like: torch.Tensor) -> torch.Tensor | None:
    """Concatenate (B, T_i) masks along time; None when every mask is None (all steps real)."""
    if all(m is None for m in masks):
        return None
    B = like.shape[0]
    return torch.cat([torch.ones(B, T, dtype=torch.bool, device=like.device) if m is None else m
                      for m, T in zip(masks, lengths)], dim=1)


class ReinforcementLayer(nn.Module):
    """Layer i: CMU_{s1,s2->t}^{[i]} and SCU_{[s1,s2]->t}^{[i]} for every target t, in parallel (or in series)."""

    def __init__(self, cfg: MCRConfig):
        super().__init__()
        self.cfg = cfg
        d, hidden = cfg.d_model, cfg.ffn_mult * cfg.d_model
        drop = dict(attn_dropout=cfg.attn_dropout, relu_dropout=cfg.relu_dropout, res_dropout=cfg.res_dropout)
        self.cmu = nn.ModuleDict()
        self.scu = nn.ModuleDict()
        for t in cfg.active_targets:
            s1, s2 = cfg.sources_of(t)
            if cfg.use_cmu:
                self.cmu[t] = CMU(d, hidden, mutual_attention=cfg.mutual_attention, exchange=cfg.exchange,
                                  exchange_kernel=cfg.exchange_kernel, max_len_s1=cfg.max_len(s1),
                                  max_len_s2=cfg.max_len(s2), **drop)
            if cfg.use_scu:
                self.scu[t] = SCU(d, cfg.n_heads, hidden, attention_layer=cfg.scu_attention_layer,
                                  form=cfg.scu_attention, max_len_t=cfg.max_len(t), **drop)

    def forward(self, z_tgt: dict[str, torch.Tensor], z_src: dict[str, torch.Tensor],
                z_ds: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None],
                ds_masks: dict[str, torch.Tensor | None], *, need_weights: bool
                ) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
        """{t: Z_t^{[i]} (B, T_t, d)} -> {t: Z_t^{[i+1]} (B, T_t, d)} and per-target attention info."""
        out: dict[str, torch.Tensor] = {}
        info: dict[str, dict[str, Any]] = {}
        for t in self.cfg.active_targets:
            s1, s2 = self.cfg.sources_of(t)
            info[t] = {"sources": (s1, s2)}
            z_ta = z_tb = None
            if self.cfg.use_cmu:
                z_ta, cmu_info = self.cmu[t](z_src[s1], z_src[s2], z_tgt[t], masks[s1], masks[s2], masks[t],
                                             need_weights=need_weights)
                info[t].update(cmu_info)
            if self.cfg.use_scu:
                scu_input = z_ta if self.cfg.structure == "serial" else z_tgt[t]
                z_tb, scu_info = self.scu[t](z_ds[t], scu_input, ds_masks[t], masks[t], need_weights=need_weights)
                info[t].update(scu_info)
            if self.cfg.structure == "serial":
                out[t] = z_tb
            else:
                out[t] = z_ta if z_tb is None else (z_tb if z_ta is None else z_ta + z_tb)
        return out, info


class MCR(nn.Module):
    """The full model. ``forward(x_l, x_v, x_a, mask_l, mask_v, mask_a, return_attention) -> ModelOutput``."""

    def __init__(self, cfg: MCRConfig):
        super().__init__()
        assert cfg.arch == "mcr", f"MCR built from a config with arch={cfg.arch!r}"
        cfg.validate()
        self._check_literal_size(cfg)
        self.cfg = cfg
        d, hidden = cfg.d_model, cfg.ffn_mult * cfg.d_model
        self.targets = cfg.active_targets
        self.target_sources = {t: cfg.sources_of(t) for t in self.targets}
        self.source_modalities = tuple(m for m in cfg.modalities
                                       if any(m in pair for pair in self.target_sources.values()))
        self.preprocess = Preprocess(cfg.modalities, {m: cfg.input_dim(m) for m in cfg.modalities},
                                     {m: cfg.kernel(m) for m in cfg.modalities}, d, dropout=cfg.embed_dropout)
        self.layers = nn.ModuleList(ReinforcementLayer(cfg) for _ in range(cfg.n_layers))
        self.sums = nn.ModuleList()
        if cfg.source_update != "low_level":
            max_lens = {m: (cfg.max_len(m) if cfg.time_bias == "per_step" else None) for m in cfg.modalities}
            self.sums = nn.ModuleList(
                SUM(d, hidden, sources=self.source_modalities, targets=self.target_sources, mode=cfg.source_update,
                    build_ds=cfg.use_scu, max_lens=max_lens, relu_dropout=cfg.relu_dropout,
                    res_dropout=cfg.res_dropout)
                for _ in range(cfg.n_layers - 1))
        self.encoder = TransformerEncoder(d, cfg.n_heads, cfg.n_encoder_layers, hidden, attn_dropout=cfg.attn_dropout,
                                          relu_dropout=cfg.relu_dropout, res_dropout=cfg.res_dropout)
        self.head = OutputHead(d * len(self.targets), cfg.output_dim, cfg.task, out_dropout=cfg.out_dropout)

    @staticmethod
    def _check_literal_size(cfg: MCRConfig) -> None:
        if cfg.scu_attention != "flat" or not cfg.use_scu or not cfg.scu_attention_layer:
            return
        total = sum(flat_attention_params(cfg.max_len(t), cfg.d_model) for t in cfg.active_targets) * cfg.n_layers
        if total > LITERAL_PARAM_LIMIT:
            lens = {t: cfg.max_len(t) for t in cfg.active_targets}
            raise ValueError(f"MCRConfig: scu_attention='flat' (literal eq. 9) needs {total:,} parameters for max "
                             f"target lengths {lens} and d={cfg.d_model}, over the limit of {LITERAL_PARAM_LIMIT:,};"
                             f" use scu_attention='pooled' or shorter max lengths")

    def forward(self, x_l: torch.Tensor | None, x_v: torch.Tensor | None, x_a: torch.Tensor | None,
                mask_l: torch.Tensor | None = None, mask_v: torch.Tensor | None = None,
                mask_a: torch.Tensor | None = None, return_attention: bool = False) -> ModelOutput:
        """x_* (B, T_*, d_*) float, mask_* (B, T_*) bool (True = real step, None = all real).

        Modalities the config does not use may be None. Returns :class:`ModelOutput`.
        """
        xs, masks = gather_inputs(self.cfg, (x_l, x_v, x_a), (mask_l, mask_v, mask_a))
        z = self.preprocess(xs, masks)  # {m: (B, T_m, d)}
        z_tgt = {t: z[t] for t in self.targets}
        z_src = {s: z[s] for s in self.source_modalities}
        lengths = {m: z[m].shape[1] for m in z}
        any_x = next(iter(z.values()))
        ds_masks = {t: _cat_masks([masks[s1], masks[s2]], [lengths[s1], lengths[s2]], any_x)
                    for t, (s1, s2) in self.target_sources.items()}
        z_ds: dict[str, torch.Tensor] = {}
        if self.cfg.use_scu:  # Z_ds^{[0]}: the pre-processed sources, concatenated (section 3.2)
            z_ds = {t: torch.cat([z_src[s1], z_src[s2]], dim=1) for t, (s1, s2) in self.target_sources.items()}

        layer_info = []
        for i, layer in enumerate(self.layers):
            z_tgt, info = layer(z_tgt, z_src, z_ds, masks, ds_masks, need_weights=return_attention)
            layer_info.append(info)
            if i < len(self.sums):
                z_src, new_ds = self.sums[i](z_src, z_tgt, build_ds=self.cfg.use_scu)
                z_ds = new_ds if self.cfg.use_scu else z_ds

        fin_lengths = [lengths[t] for t in self.targets]
        z_fin = torch.cat([z_tgt[t] for t in self.targets], dim=1)  # (B, sum T_t, d)
        fin_mask = _cat_masks([masks[t] for t in self.targets], fin_lengths, z_fin)
        h = self.encoder(z_fin, fin_mask)  # (B, sum T_t, d)
        pooled = [pool(part, masks[t], self.cfg.pooling)
                  for t, part in zip(self.targets, torch.split(h, fin_lengths, dim=1))]  # each (B, d)
        output = self.head(torch.cat(pooled, dim=-1))
        attention = {"layers": layer_info} if return_attention else None
        return ModelOutput(output=output, attention=attention)


def gather_inputs(cfg: MCRConfig, xs: tuple, masks: tuple) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Check shapes and keep the modalities the config uses: ({m: (B, T_m, d_m)}, {m: (B, T_m) bool or None}), each
    brought to its stream rate (T_m becomes ceil(T_m / pool_m), see ``MCRConfig.pool_a``)."""
    out_x, out_m = {}, {}
    batch = None
    for m, x, mask in zip(("l", "v", "a"), xs, masks):
        if m not in cfg.modalities:
            continue
        assert x is not None, f"modality {m!r} is used by this model but x_{m} is None"
        assert x.dim() == 3 and x.shape[2] == cfg.input_dim(m), (
            f"x_{m} must be (B, T, {cfg.input_dim(m)}); got {tuple(x.shape)}")
        batch = x.shape[0] if batch is None else batch
        assert x.shape[0] == batch, f"x_{m} has batch {x.shape[0]}, expected {batch}"
        if mask is not None:
            assert mask.shape == x.shape[:2] and mask.dtype == torch.bool, (
                f"mask_{m} must be bool {tuple(x.shape[:2])}; got {mask.dtype} {tuple(mask.shape)}")
        out_x[m], out_m[m] = mean_pool_steps(x, mask, cfg.input_pool(m))
    return out_x, out_m
