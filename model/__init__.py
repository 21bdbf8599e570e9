"""The MCR model (Yang et al. 2023) and the MulT baseline.

    from model import MCRConfig, build_model, PRESETS, load_preset, ModelOutput
    model = build_model(load_preset("mosi").model)
    out = model(x_l, x_v, x_a, mask_l=None, mask_v=None, mask_a=None, return_attention=False)
"""
from __future__ import annotations

from torch import nn

from .attention import lengths_to_mask
from .config import ABLATIONS, IEMOCAP_EMOTIONS, MCRConfig
from .heads import ModelOutput
from .mcr import MCR
from .mult import MulT
from .presets import PRESETS, Preset, load_preset


def build_model(cfg: MCRConfig) -> nn.Module:
    """MCR or MulT, as ``cfg.arch`` says."""
    return MCR(cfg) if cfg.arch == "mcr" else MulT(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ABLATIONS", "IEMOCAP_EMOTIONS", "MCR", "MCRConfig", "ModelOutput", "MulT", "PRESETS", "Preset",
           "build_model", "count_parameters", "lengths_to_mask", "load_preset"]
