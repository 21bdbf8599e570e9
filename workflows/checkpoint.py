"""Checkpoints as safetensors + JSON, written atomically so a run killed at any instant resumes cleanly.

A checkpoint is ONE safetensors file: the model's tensors under ``model.``, the optimizer's per-parameter tensors
under ``optim.<index>.<name>``, and everything else (epoch, scheduler, optimizer hyper-parameters, history, best
validation loss...) as a JSON string in the file's metadata. It is written to a temporary name and renamed, so the
file on disk is always a whole checkpoint of one epoch. Nothing here unpickles anything.

Every tensor file written here has a JSON record beside it (``X.safetensors`` -> ``X.json``), written after it,
that holds its SHA-256; every load checks it first, so a flipped byte, a truncated or emptied file or a missing
record is a one-line ``ValueError`` naming the file, never weights that quietly give wrong outputs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from pipeline.files import atomic_write, sha256_file, write_json

RESTORE = "retrain, or restore the file from a backup"


def record_path(path: Path) -> Path:
    """The JSON record of a tensor file: ``best.safetensors`` -> ``best.json``."""
    return Path(path).with_suffix(".json")


def verify_file(path: Path, expected: str | None, record: Path, *, hint: str = RESTORE) -> None:
    """Refuse ``path`` unless its SHA-256 is ``expected``, the checksum ``record`` (a JSON file) holds for it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: [load] missing, though {record} records it; {hint}")
    if not expected:
        raise ValueError(f"{path}: [load] {record} holds no checksum of it (written by an older version?); {hint}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: [load] the file is empty; {hint}")
    if sha256_file(path) != expected:
        raise ValueError(f"{path}: [load] its SHA-256 differs from the one in {record}: the file is corrupt, "
                         f"truncated or was changed; {hint}")


def read_record(path: Path, *, hint: str = RESTORE) -> dict:
    """The JSON record of the tensor file ``path`` (epoch, val_loss, sha256...), without checking the file."""
    record = record_path(path)
    try:
        value = json.loads(record.read_text())
    except FileNotFoundError:
        raise ValueError(f"{record}: [load] missing: it holds the checksum of {Path(path).name}; {hint}") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{record}: [load] unreadable ({exc}); {hint}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{record}: [load] not a JSON object; {hint}")
    return value


def verified_record(path: Path, *, hint: str = RESTORE) -> dict:
    """:func:`read_record`, after checking that ``path`` has the SHA-256 the record holds."""
    record = read_record(path, hint=hint)
    verify_file(path, record.get("sha256"), record_path(path), hint=hint)
    return record


def _save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str], record: dict) -> None:
    """The tensor file, then its JSON record with the file's SHA-256 (a crash between the two leaves a mismatch,
    which every load refuses)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    write_json(record_path(path), dict(record, sha256=sha256_file(path)))


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; a file safetensors cannot parse is a one-line error."""
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: [load] not a readable safetensors file ({exc}); {RESTORE}") from None


def _load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: [load] its tensors do not fit the model ({first}); {RESTORE}") from None


def save_weights(model: torch.nn.Module, path: Path, *, model_config: dict, meta: dict | None = None) -> None:
    """The model's state dict alone (what ``best.safetensors`` holds), with the config it is rebuilt from
    (``model_config``, as nanoGPT's ``model_args``) and ``meta`` as JSON metadata; ``meta`` and the file's
    SHA-256 also go to the JSON record beside it."""
    _save(dict(model.state_dict()), Path(path),
          {"model_config": json.dumps(model_config, sort_keys=True), "meta": json.dumps(meta or {})}, meta or {})


def load_model(path: Path, *, device: str = "cpu") -> tuple[torch.nn.Module, object, dict]:
    """(model in eval mode, its MCRConfig, meta) rebuilt from a :func:`save_weights` file and its record."""
    from model import MCRConfig, build_model

    path = Path(path)
    verified_record(path)
    tensors, metadata = _read(path)
    if "model_config" not in metadata:
        raise ValueError(f"{path}: [load] the checkpoint holds no model_config; it was written by an older "
                         "version: retrain the run")
    try:  # a crafted checkpoint (its SHA-256 recomputed) is refused like a bad config: before memory is taken
        cfg = MCRConfig.from_dict(json.loads(metadata["model_config"]))
        model = build_model(cfg)
        meta = json.loads(metadata.get("meta", "{}"))
        if not isinstance(meta, dict):
            raise TypeError(f"meta is a {type(meta).__name__}, not an object")
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: [load] its model_config or meta cannot be used "
                         f"({' '.join(str(exc).split())}); {RESTORE}") from None
    _load_state(model, tensors, path)
    return model.to(device).eval(), cfg, meta


def load_weights(model: torch.nn.Module, path: Path) -> dict:
    """Load :func:`save_weights` output (or the ``model.`` part of a checkpoint) into ``model``; return its meta."""
    path = Path(path)
    verified_record(path)
    tensors, metadata = _read(path)
    if "state" in metadata:  # a full checkpoint: keep the model's part
        tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _load_state(model, tensors, path)
    return json.loads(metadata.get("meta", "{}"))


def read_metadata(path: Path) -> dict[str, str]:
    return _read(Path(path))[1]


def save_arrays(arrays: dict, path: Path) -> str:
    """NumPy arrays (the normalizer) as safetensors, atomically; returns the file's SHA-256 for the caller to
    record after it."""
    from safetensors.numpy import save_file as save_numpy

    atomic_write(path, lambda tmp: save_numpy(arrays, tmp))
    return sha256_file(path)


def load_arrays(path: Path, expected: str | None, record: Path) -> dict:
    """The arrays of :func:`save_arrays`, after checking the SHA-256 that ``record`` holds for them."""
    from safetensors.numpy import load_file as load_numpy

    verify_file(path, expected, record)
    try:
        return load_numpy(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: [load] not a readable safetensors file ({exc}); {RESTORE}") from None


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], *, model_config: dict,
                    average: dict[str, torch.Tensor] | None = None) -> None:
    """Model + optimizer tensors, the model's config and the JSON-able ``state`` (scheduler, epoch, history...) in
    one atomic file; its record (``last.json``) holds the state but the history, and the file's SHA-256.
    ``average``: the state dict of the averaged weights (:mod:`workflows.weight_average`), under ``average.``."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"average.{k}": v for k, v in (average or {}).items()})
    optim = optimizer.state_dict()
    for index, per_param in optim["state"].items():
        for name, value in per_param.items():
            if not torch.is_tensor(value):
                raise TypeError(f"{path}: optimizer state {name!r} is not a tensor; it cannot go in safetensors")
            tensors[f"optim.{index}.{name}"] = value
    state = dict(state, optimizer_param_groups=optim["param_groups"])
    _save(tensors, Path(path), {"state": json.dumps(state), "model_config": json.dumps(model_config, sort_keys=True)},
          {k: v for k, v in state.items() if k != "history"})


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore ``model`` and ``optimizer`` from :func:`save_checkpoint` output; return the saved ``state``, with the
    averaged weights' tensors under ``"average"`` ({} when it holds none)."""
    path = Path(path)
    verified_record(path)
    tensors, metadata = _read(path)
    try:
        state = json.loads(metadata["state"])
    except (KeyError, ValueError):
        raise ValueError(f"{path}: [load] its training state is missing or not JSON; {RESTORE}") from None
    _load_state(model, {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state.pop("optimizer_param_groups")})
    state["average"] = {k[len("average."):]: v for k, v in tensors.items() if k.startswith("average.")}
    return state
