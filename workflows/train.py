"""Train MCR (or a baseline) as the paper does, resumably and deterministically.

Adam; L1 loss for regression, cross-entropy for IEMOCAP and classification; Table 1's batch size, learning rate and
epochs (from the preset, :mod:`workflows.train_config`); gradient-norm clipping; ReduceLROnPlateau on the validation
loss; model selection and early stopping on the validation split only (its loss, or its unweighted accuracy:
``TrainConfig.select_on``). After every epoch a checkpoint (safetensors, see :mod:`workflows.checkpoint`) holds
everything needed to continue; every epoch draws its shuffling, its batches of similar lengths and its dropout from
(seed, epoch) alone (and its modality dropout, :func:`modality_dropout_mask`, from (seed, epoch, batch)), so a run
killed at any point and started again ends exactly where an uninterrupted one does. On CPU the model trains in
float32 with as many threads as cores are free (:mod:`workflows.cpus`). The run directory's layout is in
:mod:`workflows.runs`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pipeline import metrics as M
from pipeline.arrays import MODALITIES, ArraySplit, fit_normalizer, length_batches, normalize
from pipeline.errors import StageError
from pipeline.files import write_json
from workflows.checkpoint import (load_checkpoint, load_weights, record_path, save_arrays, save_checkpoint,
                                  save_weights, verified_record)
from workflows.cpus import denormals_flushed, training_threads
from workflows.inference import autocast, batch_inputs, pick_device, predict_arrays
from workflows.runs import config_record, identity, read_config, summarize
from workflows.train_config import TrainConfig
from workflows.weight_average import WeightAverage


def _task_loss(task: str, output: torch.Tensor, labels: torch.Tensor, *, label_smoothing: float = 0.0
               ) -> torch.Tensor:
    """L1 for regression ((B, 1) vs (B,)), cross-entropy for iemocap ((B, 4, 2) vs (B, 4)) and classification,
    with ``label_smoothing`` (:attr:`TrainConfig.label_smoothing`; not for a regression)."""
    output = output.float()
    if task == "regression":
        return torch.nn.functional.l1_loss(output.reshape(-1), labels.float())
    if task == "iemocap":
        return torch.nn.functional.cross_entropy(output.reshape(-1, 2), labels.reshape(-1).long(),
                                                 label_smoothing=label_smoothing)
    return torch.nn.functional.cross_entropy(output, labels.long(), label_smoothing=label_smoothing)


def _evaluate(model, split: ArraySplit, task: str, batch_size: int, amp: bool) -> tuple[float, dict, np.ndarray]:
    """(loss, metrics, outputs) of ``model`` on a split."""
    outputs = predict_arrays(model, split, batch_size=batch_size, amp=amp)
    loss = float(_task_loss(task, torch.from_numpy(outputs), torch.from_numpy(split.labels)))
    return loss, M.compute_metrics(task, outputs, split.labels), outputs


INPUT_MODALITIES = ("l", "v", "a")  # the model's input order: (x_l, x_v, x_a, mask_l, mask_v, mask_a)
_DROPOUT_STREAM = 0x6D64  # keeps the dropout draws apart from the shuffling's default_rng([seed, epoch])


def modality_dropout_mask(rng: np.random.Generator, n: int, p: float, used: tuple[int, ...] = (0, 1, 2)
                          ) -> np.ndarray:
    """(n, 3) bool, True where sample i loses modality j (the model's order l, v, a) for this batch.

    Each of the ``used`` modalities (indices into l, v, a; the model's own) is dropped with probability ``p``,
    independently; a sample that would lose all of them keeps one, chosen uniformly. So at least one modality is
    always left, a modality is dropped at the rate p - p**k / k (k = len(used)), and a unimodal model never.
    """
    dropped = np.zeros((n, len(INPUT_MODALITIES)), bool)
    used = list(used)
    if p <= 0 or len(used) < 2:
        return dropped
    draw = rng.random((n, len(used))) < p
    keep = rng.integers(0, len(used), n)  # drawn for every sample, so the draws do not depend on the outcome
    everything = np.flatnonzero(draw.all(1))
    draw[everything, keep[everything]] = False
    dropped[:, used] = draw
    return dropped


def drop_modalities(inputs: list[torch.Tensor], dropped: np.ndarray) -> list[torch.Tensor]:
    """The model's inputs with modality j of sample i masked out (mask all False, features 0) where dropped[i, j]."""
    out = list(inputs)
    k = len(INPUT_MODALITIES)
    for j in range(k):
        rows = np.flatnonzero(dropped[:, j])
        if len(rows):
            rows_t = torch.from_numpy(rows).to(out[j].device)
            out[j], out[k + j] = out[j].clone(), out[k + j].clone()
            out[j][rows_t] = 0
            out[k + j][rows_t] = False
    return out


def batch_dropout(tcfg: TrainConfig, epoch: int, batch: int, n: int, modalities) -> np.ndarray:
    """The modality dropout of one training batch: a function of (seed, epoch, batch) only (see TrainConfig)."""
    used = tuple(INPUT_MODALITIES.index(m) for m in modalities)
    rng = np.random.default_rng([tcfg.seed, epoch, batch, _DROPOUT_STREAM])
    return modality_dropout_mask(rng, n, tcfg.modality_dropout, used)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


@denormals_flushed()  # a trained model's step makes denormals, slow on CPU: workflows/cpus.py
def train_run(splits: dict[str, ArraySplit], model_cfg, tcfg: TrainConfig, out: str | Path, *,
              data_info: dict | None = None, progress: bool = True,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Train one seed into ``out`` (resuming when it holds a checkpoint of the same config); return its metrics.

    splits: ``train`` and ``valid`` (model selection, early stopping, LR schedule), optionally ``test`` (only
        evaluated at the end, with the best validation epoch's weights).
    """
    from model import build_model

    if "train" not in splits or "valid" not in splits:
        raise ValueError(f"[train] need train and valid splits, got {sorted(splits)}")
    task = splits["train"].task
    if model_cfg.task != task:
        raise ValueError(f"[train] the model is for {model_cfg.task!r} but the data's labels are {task!r}")
    if tcfg.select_on == "unweighted_accuracy" and task == "regression":
        raise ValueError(f"[train] select_on={tcfg.select_on!r} needs classes; a regression selects on its loss")
    if tcfg.label_smoothing and task == "regression":
        raise ValueError(f"[train] label_smoothing={tcfg.label_smoothing} needs classes; a regression has none")
    out = Path(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    record = config_record(model_cfg, tcfg, data_info or {})
    if (out / "config.json").exists():
        if identity(read_config(out / "config.json")) != identity(record):
            raise ValueError(f"{out}: [train] holds a run with another configuration; choose another --out")
    if tcfg.normalize:
        stats = fit_normalizer(splits["train"])
        # config.json, written after it, holds its checksum (the same on every start: the statistics are)
        record = dict(record, normalizer_sha256=save_arrays(stats, out / "normalizer.safetensors"))
        splits = {name: normalize(s, stats) for name, s in splits.items()}
    write_json(out / "config.json", record)
    device = pick_device(tcfg.device)
    if device.type == "cpu":
        torch.set_num_threads(training_threads(tcfg.cpu_threads))
        log(f"training on CPU, float32, {torch.get_num_threads()} thread(s)")
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
    state: dict[str, Any] = {"epoch": 0, "best_val_loss": math.inf, "best_score": -math.inf, "best_epoch": 0,
                             "bad_epochs": 0, "stopped_early": False, "history": []}
    average = WeightAverage(model, tcfg.weight_average) if tcfg.weight_average > 0 else None
    last = out / "checkpoints" / "last.safetensors"
    if _resumable(out, log):
        state = load_checkpoint(last, model, optimizer)
        scheduler.load_state_dict(state.pop("scheduler"))
        scaler.load_state_dict(state.pop("scaler"))
        averaged = state.pop("average")
        if average is not None:
            assert averaged, f"{last}: a run with weight_average holds the average in every checkpoint"
            average.load_state_dict(averaged, steps=state["average_steps"])
        state.setdefault("best_score", -state["best_val_loss"])  # a run from before select_on selected on the loss
        log(f"resuming {out} after epoch {state['epoch']}")

    train, valid = splits["train"], splits["valid"]
    costs = _step_costs(train, model_cfg) if tcfg.bucket else None
    n_batches = math.ceil(len(train) / tcfg.batch_size)
    while state["epoch"] < tcfg.epochs and not state["stopped_early"]:
        epoch = state["epoch"] + 1
        started = time.time()
        _seed_everything(tcfg.seed * 1_000_003 + epoch)  # dropout of this epoch
        rng = np.random.default_rng([tcfg.seed, epoch])
        if costs is not None:
            batches = length_batches(costs, tcfg.batch_size, rng)
        else:
            order = rng.permutation(len(train))
            batches = [order[i:i + tcfg.batch_size] for i in range(0, len(train), tcfg.batch_size)]
        model.train()
        total, seen, n_dropped = 0.0, 0, np.zeros(len(INPUT_MODALITIES))
        bar = _progress(n_batches, f"epoch {epoch}/{tcfg.epochs}", progress)
        for b, index in enumerate(batches):
            inputs, labels = batch_inputs(train, index, device)
            if tcfg.modality_dropout > 0:
                dropped = batch_dropout(tcfg, epoch, b, len(index), model_cfg.modalities)
                inputs = drop_modalities(inputs, dropped)
                n_dropped += dropped.sum(0)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, tcfg.amp):
                output = model(*inputs).output
            loss = _task_loss(task, output, labels, label_smoothing=tcfg.label_smoothing)
            scaler.scale(loss).backward()
            if tcfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if average is not None:
                average.update(model)
            total, seen = total + loss.item() * len(index), seen + len(index)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / seen:.4f}")
        if bar is not None:
            bar.close()
        kept = model if average is None else average.module  # the weights validated, selected and kept
        val_loss, val_metrics, _ = _evaluate(kept, valid, task, tcfg.eval_batch_size, tcfg.amp)
        scheduler.step(val_loss)
        score = selection_score(tcfg.select_on, task, val_loss, val_metrics)
        if score > state["best_score"]:
            state.update(best_val_loss=val_loss, best_score=score, best_epoch=epoch, bad_epochs=0)
            save_weights(kept, out / "checkpoints" / "best.safetensors", model_config=record["model"],
                         meta={"epoch": epoch, "val_loss": val_loss, "val_score": score})  # and best.json
        else:
            state["bad_epochs"] += 1
        state["stopped_early"] = bool(tcfg.early_stop_patience and state["bad_epochs"] >= tcfg.early_stop_patience)
        state["history"].append(M.jsonable({
            "epoch": epoch, "train_loss": total / max(seen, 1), "val_loss": val_loss,
            "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - started, 3),
            **({"dropped": dict(zip(INPUT_MODALITIES, (n_dropped / max(seen, 1)).round(4).tolist()))}
               if tcfg.modality_dropout > 0 else {}),
            **{f"val_{k}": v for k, v in val_metrics.items()}}))
        state["epoch"] = epoch
        if average is not None:
            state["average_steps"] = average.steps
        save_checkpoint(last, model, optimizer, dict(state, scheduler=scheduler.state_dict(),
                                                     scaler=scaler.state_dict()), model_config=record["model"],
                        average=None if average is None else average.state_dict())
        write_json(out / "history.json", state["history"])
        log(f"epoch {epoch}: train {total / max(seen, 1):.4f}  valid {val_loss:.4f}"
            + ("  (best)" if state["best_epoch"] == epoch else ""))
    if state["stopped_early"]:
        log(f"stopped early after epoch {state['epoch']} (best {state['best_epoch']})")
    return _final_metrics(model, splits, task, tcfg, out, state)


def selection_score(select_on: str, task: str, val_loss: float, val_metrics: dict) -> float:
    """The figure the best epoch maximises: minus the validation loss, or its unweighted accuracy (the mean over
    emotions for iemocap; ``auto``: for a classification); -inf when it is not finite (a diverged epoch is never the
    best)."""
    if select_on == "auto":
        select_on = "unweighted_accuracy" if task == "classification" else "loss"
    if select_on == "loss":
        score = -val_loss
    else:
        score = val_metrics["mean_unweighted_accuracy" if task == "iemocap" else "unweighted_accuracy"]
    return float(score) if score is not None and math.isfinite(score) else -math.inf


def _step_costs(split: ArraySplit, model_cfg) -> np.ndarray:
    """What a sample costs the model, for batching by length: its real steps, each modality's counted at the rate
    the model sees it (pool_m). -> (N,) float."""
    return sum(getattr(split, f"{name}_mask").sum(1) / model_cfg.input_pool(m)
               for m, name in zip(INPUT_MODALITIES, MODALITIES) if m in model_cfg.modalities)


def _resumable(out: Path, log: Callable[[str], None]) -> bool:
    """Whether ``out`` holds a checkpoint to resume from whose files match their checksums.

    A mismatch (the run was killed between a tensor file and its JSON record, or a file was damaged) is not
    loaded: the checkpoints are removed and training starts again from epoch 1, which ends where the interrupted
    run would have (every epoch draws its randomness from (seed, epoch) alone).
    """
    checkpoints = out / "checkpoints"
    last, best = checkpoints / "last.safetensors", checkpoints / "best.safetensors"
    if not last.exists() and not record_path(last).exists():
        return False
    hint = "training again from epoch 1 instead of resuming"
    try:
        state = verified_record(last, hint=hint)
        if state.get("best_epoch"):  # the best epoch's weights are part of what the run resumes with
            verified_record(best, hint=hint)
    except ValueError as exc:
        log(str(exc))
        for path in (last, record_path(last), best, record_path(best)):
            path.unlink(missing_ok=True)
        return False
    return True


def _final_metrics(model, splits, task: str, tcfg: TrainConfig, out: Path, state: dict) -> dict:
    """Evaluate the best validation epoch's weights on every split but train; write ``metrics.json``."""
    if not (out / "checkpoints" / "best.safetensors").exists():
        raise StageError(out, "train", "no epoch reached a finite validation loss (diverged?); "
                         "try a lower learning rate (--lr)")
    load_weights(model, out / "checkpoints" / "best.safetensors")
    result: dict[str, Any] = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
                              "stopped_early": state["stopped_early"], "task": task}
    for name in ("valid", "test"):
        if name in splits and len(splits[name]):
            loss, metrics, outputs = _evaluate(model, splits[name], task, tcfg.eval_batch_size, tcfg.amp)
            result[name] = dict(metrics, loss=loss)
            result[f"{name}_confusion"] = M.confusion(task, outputs, splits[name].labels, splits[name].classes)
    write_json(out / "metrics.json", M.jsonable(result))
    return result


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


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
    write_json(out / "config.json", {**config_record(model_cfg, tcfg, kwargs.get("data_info") or {}),
                                     "seeds": summary["seeds"]})
    write_json(out / "summary.json", summary)
    return summary
