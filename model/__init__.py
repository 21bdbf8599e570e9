"""The MCR model (Yang et al. 2023) and the MulT baseline.

    from model import MCRConfig, build_model, PRESETS, load_preset, ModelOutput
    model = build_model(load_preset("mosi").model)
    out = model(x_l, x_v, x_a, mask_l=None, mask_v=None, mask_a=None, return_attention=False)
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import lengths_to_mask
from .config import ABLATIONS, IEMOCAP_EMOTIONS, MCRConfig
from .heads import ModelOutput
from .mcr import MCR
from .mult import MulT
from .presets import PRESETS, Preset, load_preset


MAX_PARAMETERS = 500_000_000
"""The largest model built: 2 GB of float32 weights, about 8 GB to train with Adam (the paper's models: under 1 M)."""


def check_size(cfg: MCRConfig) -> None:
    """Refuse a config of more than :data:`MAX_PARAMETERS` parameters before any memory is taken: it is counted
    on PyTorch's meta device, which holds no data (milliseconds for the paper's sizes)."""
    with torch.device("meta"):
        size = count_parameters(MCR(cfg) if cfg.arch == "mcr" else MulT(cfg))
    if size > MAX_PARAMETERS:
        raise ValueError(f"MCRConfig: d_model={cfg.d_model}, n_layers={cfg.n_layers}, ffn_mult={cfg.ffn_mult} "
                         f"make {size / 1e6:,.0f} M parameters, past the {MAX_PARAMETERS / 1e6:,.0f} M that fit "
                         "in memory to train; make the model smaller")


def build_model(cfg: MCRConfig) -> nn.Module:
    """MCR or MulT, as ``cfg.arch`` says (its size checked first: :func:`check_size`)."""
    check_size(cfg)
    return MCR(cfg) if cfg.arch == "mcr" else MulT(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ABLATIONS", "IEMOCAP_EMOTIONS", "MCR", "MCRConfig", "ModelOutput", "MulT", "PRESETS", "Preset",
           "build_model", "check_size", "count_parameters", "lengths_to_mask", "load_preset"]
