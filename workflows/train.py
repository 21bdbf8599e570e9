"""Train MCR (or a baseline) as the paper does, resumably and deterministically.

Adam; L1 loss for regression, cross-entropy for IEMOCAP and classification; Table 1's batch size, learning rate and
epochs (from the preset); gradient-norm clipping; ReduceLROnPlateau on the validation loss; model selection and
early stopping on the validation split only. After every epoch a checkpoint (safetensors, see
:mod:`workflows.checkpoint`) holds everything needed to continue; every epoch draws its shuffling and dropout from
(seed, epoch) alone, so a run killed at any point and started again ends exactly where an uninterrupted one does.

A run directory::

    RUN/config.json            train + model config and the data's description
    RUN/normalizer.safetensors per-feature mean/std of each modality (from the training split)
    RUN/checkpoints/last.safetensors (+ last.json)   model + optimizer + state, after the latest epoch
    RUN/checkpoints/best.safetensors (+ best.json)   model weights of the best validation epoch
    RUN/history.json           one dict per epoch: losses, learning rate, validation metrics
    RUN/metrics.json           the best epoch's metrics on valid (and test when there is one), confusion matrices

With several seeds, ``RUN/seed-<s>/`` is one such directory per seed and ``RUN/summary.json`` the mean ± std.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy, save_file as save_numpy

from pipeline import metrics as M
from pipeline.datasets import ArraySplit, fit_normalizer, normalize
from workflows.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights, write_json


@dataclass
class TrainConfig:
    """How to train; the defaults are overridden by the preset (Table 1), then the config file, then the CLI."""

    preset: str = "mosi"
    """Table 1 column the model and the batch size / learning rate / epochs come from: mosi, mosei or iemocap."""
    batch_size: int = 64
    lr: float = 1e-3
    epochs: int = 120
    seed: int = 0
    """Seeds the model's initialisation and, with the epoch number, every epoch's shuffling and dropout."""
    grad_clip: float = 0.8
    """Max global gradient norm (MulT's default); 0 switches clipping off."""
    weight_decay: float = 0.0
    lr_patience: int = 10
    """Epochs without validation improvement before ReduceLROnPlateau multiplies the learning rate by lr_factor."""
    lr_factor: float = 0.1
    early_stop_patience: int = 25
    """Epochs without validation improvement before training stops; 0 never stops early."""
    normalize: bool = True
    """Standardise every feature with the training split's mean and std (stored with the run)."""
    max_len: int | None = None
    """Longest sequence (steps per modality) for sources of varying lengths; None keeps them whole."""
    aligned: bool = False
    """Use the word-aligned view of a store / the aligned pickle of a folder."""
    amp: bool = True
    """Mixed precision (bfloat16, or float16 with a gradient scaler) when training on CUDA."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    eval_batch_size: int = 256
    cpu_threads: int = 0
    """Torch CPU threads (0: torch's default). One is fastest for small models on a busy machine."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {unknown}")
        return cls(**d)


def configure(preset: str, config: str | Path | dict | None = None, **overrides: Any) -> tuple[Any, TrainConfig]:
    """(MCRConfig, TrainConfig) of ``preset`` (Table 1) with a config file's (or dict's) settings, then ``overrides``.

    The file (JSON or TOML) holds the preset's keys (``batch_size``, ``lr``, ``epochs``, a ``model`` table of
    MCRConfig fields) and any TrainConfig field, top level or in a ``train`` table. ``overrides``: TrainConfig
    fields (None values are ignored), e.g. the command line's.
    """
    from model import load_preset
    from model.presets import apply_overrides, read_overrides

    settings = dict(read_overrides(config) if isinstance(config, (str, Path)) else (config or {}))
    train_settings = dict(settings.pop("train", {}) or {})
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset"}
    for key in [k for k in settings if k in train_fields and k not in ("batch_size", "lr", "epochs", "extra")]:
        train_settings[key] = settings.pop(key)
    p = apply_overrides(load_preset(preset), settings)
    tcfg = TrainConfig.from_dict({"preset": preset, "batch_size": p.batch_size, "lr": p.lr, "epochs": p.epochs,
                                  **train_settings, **{k: v for k, v in overrides.items() if v is not None}})
    return p.model, tcfg


def fit_model_to_data(model_cfg, split: ArraySplit):
    """The model config with the data's feature sizes, task and number of classes."""
    d_l, d_v, d_a = split.dims
    changes: dict[str, Any] = {"d_l": d_l, "d_v": d_v, "d_a": d_a, "task": split.task}
    if split.task == "classification":
        changes["n_classes"] = len(split.classes) if split.classes else int(split.labels.max()) + 1
    return model_cfg.replace(**changes)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _task_loss(task: str, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L1 for regression ((B, 1) vs (B,)), cross-entropy for iemocap ((B, 4, 2) vs (B, 4)) and classification."""
    output = output.float()
    if task == "regression":
        return torch.nn.functional.l1_loss(output.reshape(-1), labels.float())
    if task == "iemocap":
        return torch.nn.functional.cross_entropy(output.reshape(-1, 2), labels.reshape(-1).long())
    return torch.nn.functional.cross_entropy(output, labels.long())


def _batch(split: ArraySplit, index: np.ndarray, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The model's inputs (x_l, x_v, x_a, mask_l, mask_v, mask_a) and the labels of ``index``, on ``device``.

    Steps after the batch's last real one are cut: the model masks padding, so this changes nothing but the time.
    (Leading padding, as in MulT's files, stays: cutting it would shift the positional embeddings.)
    """
    xs, masks = [], []
    for m in ("text", "vision", "audio"):
        mask = getattr(split, f"{m}_mask")[index]  # (B, T)
        real = np.flatnonzero(mask.any(0))
        end = int(real[-1]) + 1 if len(real) else 1
        xs.append(getattr(split, m)[index, :end])
        masks.append(mask[:, :end])
    inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in xs + masks]
    return inputs, torch.from_numpy(split.labels[index]).to(device)


def _autocast(device: torch.device, amp: bool):
    if device.type == "cuda" and amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def predict_arrays(model: torch.nn.Module, split: ArraySplit, *, info: dict | None = None, batch_size: int = 256,
                   amp: bool = False) -> np.ndarray:
    """The model's raw outputs for every sample: (N, 1) | (N, 4, 2) | (N, n_classes) float32.

    info: the ``info`` of :func:`load_run`; when given, the split is first normalised as the run's training was.
    """
    if info is not None and info.get("normalizer") is not None:
        split = normalize(split, info["normalizer"])
    device = next(model.parameters()).device
    model.eval()
    outputs = []
    for start in range(0, len(split), batch_size):
        inputs, _ = _batch(split, np.arange(start, min(start + batch_size, len(split))), device)
        with _autocast(device, amp):
            outputs.append(model(*inputs).output.float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def _evaluate(model, split: ArraySplit, task: str, batch_size: int, amp: bool) -> tuple[float, dict, np.ndarray]:
    """(loss, metrics, outputs) of ``model`` on a split."""
    outputs = predict_arrays(model, split, batch_size=batch_size, amp=amp)
    loss = float(_task_loss(task, torch.from_numpy(outputs), torch.from_numpy(split.labels)))
    return loss, M.compute_metrics(task, outputs, split.labels), outputs


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


_NOT_IDENTITY = ("cpu_threads", "eval_batch_size")  # settings a resumed run may change


def _identity(record: dict) -> dict:
    """The part of a run's config.json that must match for a run to be resumed."""
    train = {k: v for k, v in (record.get("train") or {}).items() if k not in _NOT_IDENTITY}
    return {"model": record.get("model"), "train": train}


def _config_record(model_cfg, tcfg: TrainConfig, data: dict) -> dict:
    return {"train": dataclasses.asdict(tcfg), "model": model_cfg.to_dict(), "data": data}


def train_run(splits: dict[str, ArraySplit], model_cfg, tcfg: TrainConfig, out: str | Path, *,
              data_info: dict | None = None, progress: bool = True,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Train one seed into ``out`` (resuming when it holds a checkpoint of the same config); return its metrics.

    splits: ``train`` and ``valid`` (model selection, early stopping, LR schedule), optionally ``test`` (only
        evaluated at the end, with the best validation epoch's weights).
    """
    from model import build_model

    assert "train" in splits and "valid" in splits, f"need train and valid splits, got {sorted(splits)}"
    task = splits["train"].task
    assert model_cfg.task == task, f"model task {model_cfg.task!r} but the data's labels are {task!r}"
    out = Path(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    record = json.loads(json.dumps(_config_record(model_cfg, tcfg, data_info or {})))
    if (out / "config.json").exists():
        if _identity(json.loads((out / "config.json").read_text())) != _identity(record):
            raise ValueError(f"{out}: [train] holds a run with another configuration; choose another --out")
    write_json(out / "config.json", record)

    if tcfg.normalize:
        stats = fit_normalizer(splits["train"])
        save_numpy(stats, str(out / "normalizer.safetensors"))
        splits = {name: normalize(s, stats) for name, s in splits.items()}
    device = pick_device(tcfg.device)
    if tcfg.cpu_threads:
        torch.set_num_threads(tcfg.cpu_threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True

    _seed_everything(tcfg.seed)
    model = build_model(model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=tcfg.lr_factor,
                                                           patience=tcfg.lr_patience)
    use_scaler = device.type == "cuda" and tcfg.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    state: dict[str, Any] = {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0,
                             "stopped_early": False, "history": []}
    last = out / "checkpoints" / "last.safetensors"
    if last.exists():
        state = load_checkpoint(last, model, optimizer)
        scheduler.load_state_dict(state.pop("scheduler"))
        scaler.load_state_dict(state.pop("scaler"))
        log(f"resuming {out} after epoch {state['epoch']}")

    train, valid = splits["train"], splits["valid"]
    n_batches = math.ceil(len(train) / tcfg.batch_size)
    while state["epoch"] < tcfg.epochs and not state["stopped_early"]:
        epoch = state["epoch"] + 1
        started = time.time()
        _seed_everything(tcfg.seed * 1_000_003 + epoch)  # dropout of this epoch
        order = np.random.default_rng([tcfg.seed, epoch]).permutation(len(train))
        model.train()
        total, seen = 0.0, 0
        bar = _progress(n_batches, f"epoch {epoch}/{tcfg.epochs}", progress)
        for b in range(n_batches):
            index = order[b * tcfg.batch_size:(b + 1) * tcfg.batch_size]
            inputs, labels = _batch(train, index, device)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, tcfg.amp):
                output = model(*inputs).output
            loss = _task_loss(task, output, labels)
            scaler.scale(loss).backward()
            if tcfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            total, seen = total + loss.item() * len(index), seen + len(index)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / seen:.4f}")
        if bar is not None:
            bar.close()
        val_loss, val_metrics, _ = _evaluate(model, valid, task, tcfg.eval_batch_size, tcfg.amp)
        scheduler.step(val_loss)
        if val_loss < state["best_val_loss"]:
            state.update(best_val_loss=val_loss, best_epoch=epoch, bad_epochs=0)
            save_weights(model, out / "checkpoints" / "best.safetensors", meta={"epoch": epoch, "val_loss": val_loss})
            write_json(out / "checkpoints" / "best.json", {"epoch": epoch, "val_loss": val_loss})
        else:
            state["bad_epochs"] += 1
        state["stopped_early"] = bool(tcfg.early_stop_patience and state["bad_epochs"] >= tcfg.early_stop_patience)
        state["history"].append(M.jsonable({
            "epoch": epoch, "train_loss": total / max(seen, 1), "val_loss": val_loss,
            "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - started, 3),
            **{f"val_{k}": v for k, v in val_metrics.items()}}))
        state["epoch"] = epoch
        save_checkpoint(last, model, optimizer, dict(state, scheduler=scheduler.state_dict(),
                                                     scaler=scaler.state_dict()))
        write_json(out / "history.json", state["history"])
        log(f"epoch {epoch}: train {total / max(seen, 1):.4f}  valid {val_loss:.4f}"
            + ("  (best)" if state["best_epoch"] == epoch else ""))
    if state["stopped_early"]:
        log(f"stopped early after epoch {state['epoch']} (best {state['best_epoch']})")
    return _final_metrics(model, splits, task, tcfg, out, state)


def _final_metrics(model, splits, task: str, tcfg: TrainConfig, out: Path, state: dict) -> dict:
    """Evaluate the best validation epoch's weights on every split but train; write ``metrics.json``."""
    if not (out / "checkpoints" / "best.safetensors").exists():
        raise RuntimeError(f"{out}: [train] no epoch reached a finite validation loss (diverged?); "
                           "try a lower learning rate")
    load_weights(model, out / "checkpoints" / "best.safetensors")
    result: dict[str, Any] = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
                              "stopped_early": state["stopped_early"], "task": task}
    for name in ("valid", "test"):
        if name in splits and len(splits[name]):
            loss, metrics, outputs = _evaluate(model, splits[name], task, tcfg.eval_batch_size, tcfg.amp)
            result[name] = dict(metrics, loss=loss)
            result[f"{name}_confusion"] = M.confusion(task, outputs, splits[name].labels)
    write_json(out / "metrics.json", M.jsonable(result))
    return result


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


def summarize(results: list[dict], splits: tuple[str, ...] = ("valid", "test")) -> dict:
    """Mean and sample std (ddof=1; 0 for one seed) of every metric over seeds: {split: {metric: {mean, std}}}."""
    summary: dict[str, Any] = {"n_seeds": len(results)}
    for split in splits:
        names = [k for k in results[0].get(split, {}) if all(k in r.get(split, {}) for r in results)]
        if not names:
            continue
        summary[split] = {}
        for name in names:
            values = np.array([np.nan if r[split][name] is None else r[split][name] for r in results], float)
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            summary[split][name] = {"mean": float(np.mean(values)), "std": std, "values": values.tolist()}
    return M.jsonable(summary)


def train_seeds(splits, model_cfg, tcfg: TrainConfig, out: str | Path, *, n_seeds: int = 1, **kwargs) -> dict:
    """One run per seed ``tcfg.seed + k`` in ``out/seed-<seed>/`` and their mean ± std in ``out/summary.json``.

    With one seed the run goes into ``out`` itself. Returns the summary (or the single run's metrics).
    """
    out = Path(out)
    if n_seeds == 1:
        return train_run(splits, model_cfg, tcfg, out, **kwargs)
    results = []
    for k in range(n_seeds):
        seed_cfg = dataclasses.replace(tcfg, seed=tcfg.seed + k)
        results.append(train_run(splits, model_cfg, seed_cfg, out / f"seed-{seed_cfg.seed}", **kwargs))
    summary = dict(summarize(results), seeds=[tcfg.seed + k for k in range(n_seeds)])
    write_json(out / "config.json", {**_config_record(model_cfg, tcfg, kwargs.get("data_info") or {}),
                                     "seeds": summary["seeds"]})
    write_json(out / "summary.json", summary)
    return summary


def holds_other_run(out: str | Path, model_cfg, tcfg: TrainConfig, data_info: dict | None = None) -> bool:
    """Whether ``out`` holds a run (finished or not) of another configuration, which training there would refuse."""
    record = _identity(json.loads(json.dumps(_config_record(model_cfg, tcfg, data_info or {}))))
    for path in (Path(out) / "config.json", Path(out) / f"seed-{tcfg.seed}" / "config.json"):
        if path.exists() and _identity(json.loads(path.read_text())) != record:
            return True
    return False


def run_dirs(run: str | Path) -> list[Path]:
    """The single-seed run directories of ``run``: itself, or its ``seed-*`` folders."""
    run = Path(run)
    if (run / "checkpoints" / "best.safetensors").exists():
        return [run]
    seeds = sorted((p for p in run.glob("seed-*") if (p / "checkpoints" / "best.safetensors").exists()),
                   key=lambda p: int(p.name.split("-", 1)[1]))
    if not seeds:
        raise FileNotFoundError(f"{run}: [load] not a trained run (no checkpoints/best.safetensors)")
    return seeds


def load_run(run: str | Path, *, device: str = "cpu") -> tuple[torch.nn.Module, Any, dict]:
    """(model in eval mode with the best validation weights, its MCRConfig, preprocessing info) of a run.

    With several seeds, the seed with the lowest best validation loss. ``info``: ``run_dir``, ``normalizer``
    ({"<m>.mean"/"<m>.std": (d,)} or None), ``max_len``, ``aligned``, ``task``, ``train`` (the TrainConfig dict),
    ``data`` (what the run was trained on), ``best_epoch``, ``best_val_loss``, ``classes`` (class names of a classification run), ``label_names`` (what each output
    index means: the emotions of iemocap outputs (B, 4, 2) in the order of MulT's labels, class names of
    classification outputs, ``["sentiment"]`` for regression).
    """
    from model import MCRConfig, build_model

    def best_loss(d: Path) -> float:
        return json.loads((d / "checkpoints" / "best.json").read_text())["val_loss"]

    run_dir = min(run_dirs(run), key=best_loss)
    record = json.loads((run_dir / "config.json").read_text())
    cfg = MCRConfig.from_dict(record["model"])
    model = build_model(cfg)
    meta = load_weights(model, run_dir / "checkpoints" / "best.safetensors")
    model.to(device).eval()
    norm = run_dir / "normalizer.safetensors"
    info = {"run_dir": str(run_dir), "normalizer": load_numpy(str(norm)) if norm.exists() else None,
            "max_len": record["train"].get("max_len"), "aligned": record["train"].get("aligned", False),
            "task": cfg.task, "train": record["train"], "data": record.get("data", {}),
            "best_epoch": meta.get("epoch"), "best_val_loss": meta.get("val_loss"),
            "classes": record.get("data", {}).get("classes"),
            "label_names": _label_names(cfg.task, record.get("data", {}))}
    return model, cfg, info


def _label_names(task: str, data: dict) -> list[str]:
    if task == "iemocap":
        return list(M.IEMOCAP_EMOTIONS)
    if task == "classification":
        return list(data.get("classes") or [])
    return ["sentiment"]
