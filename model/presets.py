"""Table 1 of the paper as presets (model config + training hyper-parameters), overridable from a JSON/TOML file.

An override file holds top-level training keys (``batch_size``, ``lr``, ``epochs``) and/or a ``model`` table of
:class:`~model.config.MCRConfig` fields, e.g. ``{"epochs": 10, "model": {"n_layers": 2, "arch": "mult"}}``.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import MCRConfig


@dataclass
class Preset:
    """One benchmark's settings: the model config and Table 1's batch size, learning rate and epochs."""

    name: str
    model: MCRConfig
    batch_size: int
    lr: float
    epochs: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model.to_dict(), "batch_size": self.batch_size, "lr": self.lr,
                "epochs": self.epochs, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preset":
        d = dict(d)
        return cls(model=MCRConfig.from_dict(d.pop("model")), **d)


def _table1(name: str, *, heads: int, kernels: tuple[int, int, int], layers: int, task: str, batch_size: int,
            lr: float, epochs: int) -> Preset:
    k_l, k_v, k_a = kernels
    model = MCRConfig(d_l=300, d_v=35, d_a=74, task=task, d_model=40, n_heads=heads, kernel_l=k_l, kernel_v=k_v,
                      kernel_a=k_a, n_layers=layers, extra={"preset": name})
    return Preset(name=name, model=model, batch_size=batch_size, lr=lr, epochs=epochs)


PRESETS: dict[str, Preset] = {
    "mosi": _table1("mosi", heads=10, kernels=(3, 3, 3), layers=3, task="regression", batch_size=64, lr=1e-3,
                    epochs=120),
    "mosei": _table1("mosei", heads=8, kernels=(3, 3, 3), layers=4, task="regression", batch_size=16, lr=1e-3,
                     epochs=30),
    "iemocap": _table1("iemocap", heads=10, kernels=(3, 3, 5), layers=3, task="iemocap", batch_size=32, lr=2e-3,
                       epochs=60),
}
"""Table 1 (feature size 40 everywhere). Input sizes are the paper's (GloVe 300 / Facet 35 / COVAREP 74);
override ``model.d_l/d_v/d_a`` for other extractors."""


def read_overrides(path: str | Path) -> dict[str, Any]:
    """Parse a JSON (``.json``) or TOML (anything else) override file into a dict."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            return json.loads(path.read_text())
        return tomllib.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not a valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'} "
                         f"preset override file: {exc}") from exc


def apply_overrides(preset: Preset, overrides: dict[str, Any]) -> Preset:
    """A new preset with ``overrides`` applied (unknown keys are an error)."""
    overrides = dict(overrides)
    model_changes = overrides.pop("model", {}) or {}
    unknown = sorted(set(overrides) - {"batch_size", "lr", "epochs", "extra"})
    if unknown:
        raise ValueError(f"preset overrides: unknown keys {unknown} (training keys: batch_size, lr, epochs; "
                         f"model fields go under 'model')")
    model = MCRConfig.from_dict({**preset.model.to_dict(), **model_changes})
    return dataclasses.replace(preset, model=model, **overrides)


def load_preset(name: str, config_file: str | Path | None = None) -> Preset:
    """``PRESETS[name]`` (a fresh copy), with the overrides of ``config_file`` (JSON or TOML) when given."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    preset = Preset.from_dict(PRESETS[name].to_dict())
    if config_file is None:
        return preset
    return apply_overrides(preset, read_overrides(config_file))
