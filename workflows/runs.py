"""Run directories: what a training run writes, and reading a trained run back for evaluation and prediction.

A run directory::

    RUN/config.json            train + model config, the data's description, the normalizer's SHA-256
    RUN/normalizer.safetensors per-feature mean/std of each modality (from the training split)
    RUN/checkpoints/last.safetensors (+ last.json)   model + optimizer + state, after the latest epoch
    RUN/checkpoints/best.safetensors (+ best.json)   model weights and config of the best validation epoch
    RUN/history.json           one dict per epoch: losses, learning rate, validation metrics
    RUN/metrics.json           the best epoch's metrics on valid (and test when there is one), confusion matrices

Each JSON is written after the tensor file it describes and holds its SHA-256 (``sha256``, ``normalizer_sha256``);
:func:`load_run` checks them all, so a damaged run is refused in one line that names the file.

With several seeds, ``RUN/seed-<s>/`` is one such directory per seed and ``RUN/summary.json`` the mean ± std.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from model import MCRConfig
from pipeline import metrics as M
from pipeline.arrays import IEMOCAP_EMOTIONS
from pipeline.files import read_json
from pipeline.options import check_fields
from pipeline.store_source import label_provenance
from workflows.checkpoint import RESTORE, load_arrays, load_model, read_record
from workflows.train_config import NEWER_OPTIONS, TrainConfig  # NEWER_OPTIONS: what an older config.json means

if TYPE_CHECKING:
    from extractors.base import Extractor

BEST = Path("checkpoints") / "best.safetensors"
_NOT_IDENTITY = ("cpu_threads", "eval_batch_size")  # settings a resumed run may change


def config_record(model_cfg, tcfg, data: dict) -> dict:
    """What ``config.json`` holds: the training and model configs and the data's description."""
    return json.loads(json.dumps({"train": dataclasses.asdict(tcfg), "model": model_cfg.to_dict(), "data": data}))


def read_config(path: Path) -> dict:
    """A run's ``config.json``: an object whose ``train``, ``model`` and ``data`` are objects, every number of the
    training and model configs within its range (:mod:`pipeline.options`); else one line naming the file."""
    record = read_json(path, hint=RESTORE)
    tables = ("train", "model", "data")
    if not isinstance(record, dict) or not all(isinstance(record.get(k, {}), dict) for k in tables):
        raise ValueError(f"{path}: [load] not a run's config (an object with the tables {', '.join(tables)}); "
                         f"{RESTORE}")
    check_fields(TrainConfig, record.get("train", {}), lambda key: f"{path}: [load] train.{key}")
    check_fields(MCRConfig, record.get("model", {}), lambda key: f"{path}: [load] model.{key}")
    return record


def identity(record: dict) -> dict:
    """The part of a run's config.json that must match for a run to be resumed."""
    train = {k: v for k, v in {**NEWER_OPTIONS, **(record.get("train") or {})}.items() if k not in _NOT_IDENTITY}
    return {"model": record.get("model"), "train": train}


def holds_other_run(out: str | Path, model_cfg, tcfg, data_info: dict | None = None) -> bool:
    """Whether ``out`` holds a run (finished or not) of another configuration, which training there would refuse."""
    record = identity(config_record(model_cfg, tcfg, data_info or {}))
    for path in (Path(out) / "config.json", Path(out) / f"seed-{tcfg.seed}" / "config.json"):
        if path.exists() and identity(read_config(path)) != record:
            return True
    return False


def run_dirs(run: str | Path) -> list[Path]:
    """The single-seed run directories of ``run`` that hold a trained model: itself, or its ``seed-*`` folders."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: [load] no such run directory (mcr train --out writes one)")
    if (run / BEST).exists():
        return [run]
    seeds = sorted((p for p in run.glob("seed-*") if (p / BEST).exists()), key=lambda p: int(p.name.split("-", 1)[1]))
    if not seeds:
        hint = ("training was interrupted before its first epoch ended: rerun the same `mcr train` command to resume"
                if (run / "config.json").exists() else "is it the --out folder of `mcr train`?")
        raise FileNotFoundError(f"{run}: [load] not a trained run (no checkpoints/best.safetensors); {hint}")
    return seeds


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


@dataclass
class TrainedRun:
    """One seed of a trained run, ready for inference: the best validation epoch's model and how to feed it."""

    model: torch.nn.Module  # in eval mode
    config: Any  # the MCRConfig the model was rebuilt from (stored in the checkpoint)
    run_dir: Path
    normalizer: dict[str, np.ndarray] | None  # {"<m>.mean"/"<m>.std": (d,)} of the training split, or None
    train: dict  # the TrainConfig as a dict
    data: dict  # what the run was trained on
    best_epoch: int | None
    best_val_loss: float | None

    @property
    def checkpoint(self) -> Path:
        """The weights' file, named in errors about what the model outputs."""
        return self.run_dir / BEST

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def extractors(self) -> dict[str, dict]:
        """What made each modality of the run's training store: ``{"name", "config", "config_hash"}``
        (:func:`pipeline.store_source.store_description`); ``{"name"}`` alone for a run recorded before configs were
        kept; {} for benchmark files and runs recorded before extractors were kept (the default extractors)."""
        return {m: dict(v) if isinstance(v, dict) else {"name": v}
                for m, v in (self.data.get("extractors") or {}).items()}

    @property
    def aligned(self) -> bool:
        return bool(self.train.get("aligned", False))

    @property
    def max_len(self) -> int | None:
        return self.train.get("max_len")

    @property
    def classes(self) -> list[str] | None:
        """Class names of a classification run."""
        return self.data.get("classes")

    @property
    def label_names(self) -> list[str]:
        """What each output index means: the emotions of iemocap outputs (B, 4, 2), class names of classification
        outputs, ``["sentiment"]`` for regression."""
        if self.task == "iemocap":
            return list(IEMOCAP_EMOTIONS)
        if self.task == "classification":
            return list(self.classes or [])
        return ["sentiment"]


def load_run(run: str | Path, *, device: str = "cpu") -> TrainedRun:
    """The trained model of ``run``; with several seeds, the seed with the lowest best validation loss."""
    def best_loss(d: Path) -> float:
        loss = read_record(d / BEST).get("val_loss")
        return loss if isinstance(loss, (int, float)) else float("inf")

    run_dir = min(run_dirs(run), key=best_loss)
    config = run_dir / "config.json"
    record = read_config(config)
    model, cfg, meta = load_model(run_dir / BEST, device=device)
    norm = run_dir / "normalizer.safetensors"
    normalizer = None
    train = record.get("train", {})
    if train.get("normalize") or "normalizer_sha256" in record or norm.exists():
        normalizer = load_arrays(norm, record.get("normalizer_sha256"), config)
    return TrainedRun(model=model, config=cfg, run_dir=run_dir, normalizer=normalizer, train=train,
                      data=record.get("data", {}), best_epoch=meta.get("epoch"), best_val_loss=meta.get("val_loss"))


def trained_extractors(trained: TrainedRun, log: Callable[[str], None]) -> dict[str, "Extractor"]:
    """The extractor of each modality the run records, rebuilt with the config its training store was extracted
    with (:meth:`extractors.base.ExtractorConfig.from_record`: options added since take their ``LEGACY`` value);
    a run that recorded names only gets the configs of before they were recorded, with one warning through ``log``.

    Raises:
        ValueError: one line naming the run's config.json and the option (or extractor) this installation cannot
            rebuild.
    """
    from extractors.base import EXTRACTORS, available, create

    built, names_only = {}, []
    for modality, spec in trained.extractors.items():
        where, name = f"{trained.run_dir / 'config.json'}: [predict] data.extractors.{modality}", spec.get("name")
        if name not in available():
            raise ValueError(f"{where}: no extractor {name!r} is installed (one of {', '.join(available())})")
        config_class, config = EXTRACTORS[name].config_class, spec.get("config")
        if not isinstance(config, (dict, type(None))):
            raise ValueError(f"{where}: its config is not an object; {RESTORE}")
        if config is None:
            names_only.append(" ".join([name, *(f"{k}={v}" for k, v in config_class.LEGACY.items())]))
        try:
            built[modality] = create(name, config_class.from_record(config, name))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}; the model's inputs cannot be extracted again as they were: retrain "
                             "on a store extracted with this version") from None
    if names_only:
        log(f"warning: {trained.run_dir}: the run recorded only the names of its extractors, not their options: "
            f"predicting with the options of then ({', '.join(names_only)}); retrain to record them")
    return built


def format_metrics(result: dict) -> str:
    """A plain-text table of a run's metrics.json or a multi-seed summary.json."""
    lines = []
    for split in ("valid", "test"):
        if split not in result:
            continue
        values = result[split]
        cells = []
        for name, v in values.items():
            if isinstance(v, dict):  # summary: mean ± std
                cells.append(f"{name} {_fmt(v['mean'])} ± {_fmt(v['std'])}")
            else:
                cells.append(f"{name} {_fmt(v)}")
        lines.append(f"{split}: " + "  ".join(cells))
    if "best_epoch" in result:
        lines.append(f"best epoch {result['best_epoch']} of {result['epochs_run']}"
                     + (" (stopped early)" if result.get("stopped_early") else ""))
    return "\n".join(lines) if lines else json.dumps(result, indent=2)


def _fmt(v) -> str:
    return "nan" if v is None else f"{v:.4f}"


def is_placeholder(trained: TrainedRun) -> bool:
    """Whether the run was trained on placeholder labels: recorded in its data info (``placeholder_labels``), else
    read from the training store's segments when that store is still there."""
    if "placeholder_labels" in trained.data:
        return bool(trained.data["placeholder_labels"])
    source = trained.data.get("source")
    return bool(source and Path(source).is_dir() and label_provenance(source)["placeholder_labels"])
