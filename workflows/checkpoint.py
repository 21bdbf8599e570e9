"""Checkpoints as safetensors + JSON, written atomically so a run killed at any instant resumes cleanly.

A checkpoint is ONE safetensors file: the model's tensors under ``model.``, the optimizer's per-parameter tensors
under ``optim.<index>.<name>``, and everything else (epoch, scheduler, optimizer hyper-parameters, history, best
validation loss...) as a JSON string in the file's metadata. It is written to a temporary name and renamed, so the
file on disk is always a whole checkpoint of one epoch; a JSON copy of the state is written next to it for people.
Nothing here unpickles anything.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pipeline.files import atomic_write, write_json


def _save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def save_weights(model: torch.nn.Module, path: Path, *, model_config: dict, meta: dict | None = None) -> None:
    """The model's state dict alone (what ``best.safetensors`` holds), with the config it is rebuilt from
    (``model_config``, as nanoGPT's ``model_args``) and ``meta`` as JSON metadata."""
    _save(dict(model.state_dict()), Path(path),
          {"model_config": json.dumps(model_config, sort_keys=True), "meta": json.dumps(meta or {})})


def load_model(path: Path, *, device: str = "cpu") -> tuple[torch.nn.Module, object, dict]:
    """(model in eval mode, its MCRConfig, meta) rebuilt from a :func:`save_weights` file alone."""
    from model import MCRConfig, build_model

    path = Path(path)
    metadata = read_metadata(path)
    if "model_config" not in metadata:
        raise ValueError(f"{path}: [load] the checkpoint holds no model_config; it was written by an older "
                         "version: retrain the run")
    cfg = MCRConfig.from_dict(json.loads(metadata["model_config"]))
    model = build_model(cfg)
    meta = load_weights(model, path)
    return model.to(device).eval(), cfg, meta


def load_weights(model: torch.nn.Module, path: Path) -> dict:
    """Load :func:`save_weights` output (or the ``model.`` part of a checkpoint) into ``model``; return its meta."""
    path = Path(path)
    tensors, metadata = load_file(str(path)), read_metadata(path)
    if "state" in metadata:  # a full checkpoint: keep the model's part
        tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(tensors)
    return json.loads(metadata.get("meta", "{}"))


def read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], *, model_config: dict) -> None:
    """Model + optimizer tensors, the model's config and the JSON-able ``state`` (scheduler, epoch, history...) in
    one atomic file."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, per_param in optim["state"].items():
        for name, value in per_param.items():
            if not torch.is_tensor(value):
                raise TypeError(f"{path}: optimizer state {name!r} is not a tensor; it cannot go in safetensors")
            tensors[f"optim.{index}.{name}"] = value
    state = dict(state, optimizer_param_groups=optim["param_groups"])
    _save(tensors, Path(path), {"state": json.dumps(state), "model_config": json.dumps(model_config, sort_keys=True)})
    write_json(Path(path).with_suffix(".json"), {k: v for k, v in state.items() if k != "history"})


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore ``model`` and ``optimizer`` from :func:`save_checkpoint` output; return the saved ``state``."""
    path = Path(path)
    state = json.loads(read_metadata(path)["state"])
    tensors = load_file(str(path))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state.pop("optimizer_param_groups")})
    return state
