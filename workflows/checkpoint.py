"""Checkpoints as safetensors + JSON, written atomically so a run killed at any instant resumes cleanly.

A checkpoint is ONE safetensors file: the model's tensors under ``model.``, the optimizer's per-parameter tensors
under ``optim.<index>.<name>``, and everything else (epoch, scheduler, optimizer hyper-parameters, history, best
validation loss...) as a JSON string in the file's metadata. It is written to a temporary name and renamed, so the
file on disk is always a whole checkpoint of one epoch; a JSON copy of the state is written next to it for people.
Nothing here unpickles anything.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    with open(tmp, "rb") as f:  # the rename must not overtake the data
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_weights(model: torch.nn.Module, path: Path, *, meta: dict | None = None) -> None:
    """The model's state dict alone (what ``best.safetensors`` holds), with ``meta`` as JSON metadata."""
    _save(dict(model.state_dict()), Path(path), {"meta": json.dumps(meta or {})})


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
                    state: dict[str, Any]) -> None:
    """Model + optimizer tensors and the JSON-able ``state`` (scheduler, epoch, history...) in one atomic file."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, per_param in optim["state"].items():
        for name, value in per_param.items():
            assert torch.is_tensor(value), f"optimizer state {name} is not a tensor"
            tensors[f"optim.{index}.{name}"] = value
    state = dict(state, optimizer_param_groups=optim["param_groups"])
    _save(tensors, Path(path), {"state": json.dumps(state)})
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
