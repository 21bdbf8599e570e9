"""How to train: :class:`TrainConfig` and the (model, training) configuration of a preset, a file and the CLI.

Precedence: the preset (the paper's Table 1 column), then the config file (JSON or TOML), then explicit overrides
(the command line). Unknown keys are refused, naming them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.arrays import MODALITIES, ArraySplit
from pipeline.options import Bound, bounded, check_fields

NEVER = 1_000_000_000  # epochs: longer than any run, so ReduceLROnPlateau never fires
EPOCHS = Bound(int, 1, 100_000, why="a run that long would never end")
BATCH = Bound(int, 1, 65_536, why="a batch that large does not fit in memory")
PATIENCE = Bound(int, 0, NEVER)


@dataclass
class TrainConfig:
    """How to train; the defaults are overridden by the preset (Table 1), then the config file, then the CLI."""

    preset: str = "mosi"
    """Table 1 column the model and the batch size / learning rate / epochs come from: mosi, mosei or iemocap."""
    batch_size: int = bounded(64, BATCH)
    lr: float = bounded(1e-3, Bound(float, 0, 10))
    epochs: int = bounded(120, EPOCHS)
    seed: int = bounded(0, Bound(int, 0, 2**32 - 1, why="numpy's seeds"))
    """Seeds the model's initialisation and, with the epoch number, every epoch's shuffling and dropout."""
    grad_clip: float = bounded(0.8, Bound(float, 0, 1e6))
    """Max global gradient norm (MulT's default); 0 switches clipping off."""
    weight_decay: float = bounded(0.0, Bound(float, 0, 100))
    label_smoothing: float = bounded(0.0, Bound(float, 0, 1, high_open=True))
    """Cross-entropy label smoothing of the training loss (classification and iemocap): the target puts
    ``1 - label_smoothing`` on the true class and spreads the rest evenly over all classes, so that the model is not
    pushed to ever more confident outputs. The validation loss (LR schedule, ``select_on = "loss"``) stays the plain
    cross-entropy. 0 (off) in the paper's presets; a regression refuses anything else."""
    lr_patience: int = bounded(3, PATIENCE)
    """Epochs without validation improvement before ReduceLROnPlateau multiplies the learning rate by lr_factor
    (3, as the MOSI and RAVDESS cross-validations measured; MulT's code: 10)."""
    lr_factor: float = bounded(0.1, Bound(float, 0, 1, low_open=True, high_open=True))
    early_stop_patience: int = bounded(8, PATIENCE)
    """Epochs without validation improvement before training stops; 0 never stops early. 8, as the MOSI
    cross-validation measured (25 before: on RAVDESS three quarters of a run were epochs after the best one, which
    were never kept; docs/model.md)."""
    schedule: str = "default"
    """``default``: early stopping and LR-on-plateau as above (docs/model.md says why); ``paper``: exactly Table 1's
    epochs at a constant learning rate, no early stop (sets early_stop_patience=0 and an lr_patience the plateau
    rule can never reach)."""
    normalize: bool = True
    """Standardise every feature with the training split's mean and std (stored with the run)."""
    max_len: int | None = bounded(None, Bound(int, 1, 10_000_000))
    """Longest sequence (steps per modality) for sources of varying lengths; None keeps them whole."""
    aligned: bool = False
    """Use the word-aligned view of a store / the aligned pickle of a folder."""
    amp: bool = True
    """Mixed precision (bfloat16, or float16 with a gradient scaler) when training on CUDA. Never on CPU: there
    bfloat16 autocast made a training step 1.5x slower than float32 (docs/benchmarks.md)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    eval_batch_size: int = bounded(256, BATCH)
    cpu_threads: int = bounded(0, Bound(int, 0, 1024))
    """Torch CPU threads; 0: the cores free when training starts (:func:`workflows.cpus.free_cores`: the cores this
    process may use, less those other processes keep busy), since threads that wait for busy cores made a step 5x
    slower on a shared 2-core machine. $OMP_NUM_THREADS, when set, is the default instead."""
    stream_rate: float | None = bounded(25.0, Bound(float, 0, 1e6), optional=True)
    """Highest rate (steps per second) at which a store's streams reach the model: a stream of a higher rate is
    mean-pooled by the whole factor ``rate // stream_rate`` (``MCRConfig.pool_m``; the 100 Hz acoustic stream by 4:
    4x less CPU per epoch, accuracy within the noise of one RAVDESS split, docs/model.md). None (or 0) keeps every
    step (the paper). Sources that do not record their rates (benchmark pickles, Parquet) are never pooled."""
    bucket: bool = True
    """Batches of samples of similar lengths (shuffled within groups of 16 batches, then the batches shuffled), so
    that a batch carries little padding; drawn from (seed, epoch) like the shuffling. False: plain shuffling."""
    select_on: str = "auto"
    """The validation figure that picks the best epoch and stops training early: ``loss``, ``unweighted_accuracy``
    (classification; the mean over emotions for iemocap) or ``auto``: the unweighted accuracy for a classification
    (one class per sample; on RAVDESS the loss kept an under-trained epoch, docs/model.md), the loss otherwise (the
    benchmarks' regression and IEMOCAP, as the paper). The learning-rate schedule follows the loss either way."""
    modality_dropout: float = bounded(0.0, Bound(float, 0, 1, high_open=True))
    """Probability, per training sample and per modality, that the whole modality is masked out for that sample
    (its mask set all False and its features zeroed), so that inputs with a missing stream (speech with no face in
    view, a face with no speech) are in the training distribution. At least one of the model's modalities is always
    left: when a sample would lose all of them, one chosen uniformly is kept (so the realised rate per modality is
    p - p**k / k for k modalities; a unimodal model is never dropped). Drawn from (seed, epoch, batch) alone, so
    runs stay exactly resumable; never applied at evaluation. 0 (off) in the paper's presets."""
    weight_average: float = bounded(0.0, Bound(float, 0, 1, high_open=True))
    """Decay of an exponential moving average of the weights, updated after every step
    (:mod:`workflows.weight_average`; at step t the decay is ``min(weight_average, (1 + t) / (10 + t))``, so a
    short run averages about its last tenth of steps): when above 0 the averaged weights are the ones validated,
    selected and kept, so the choice of the best epoch on a small validation split jumps less. 0 (off) in the
    paper's presets."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, name: Callable[[str], str] = "[train] {}".format) -> "TrainConfig":
        """The config of ``d``, refused in one line when a key is unknown or a value is out of its range
        (:mod:`pipeline.options`); ``name``: how a key is called in that line."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"[train] unknown training options {unknown}; known: "
                             f"{sorted(f.name for f in dataclasses.fields(cls))}")
        if d.get("schedule", "default") not in SCHEDULES:
            raise ValueError(f"[train] unknown schedule {d['schedule']!r}; use one of {SCHEDULES}")
        if d.get("select_on", "auto") not in SELECTIONS:
            raise ValueError(f"[train] unknown select_on {d['select_on']!r}; use one of {SELECTIONS}")
        check_fields(cls, d, name)
        if d.get("stream_rate") is not None:
            d = {**d, "stream_rate": float(d["stream_rate"]) or None}
        if d.get("schedule") == "paper":
            d = {**d, "early_stop_patience": 0, "lr_patience": NEVER}
        return cls(**d)


SCHEDULES = ("default", "paper")
SELECTIONS = ("auto", "loss", "unweighted_accuracy")
NEWER_OPTIONS = {"modality_dropout": 0.0, "label_smoothing": 0.0, "weight_average": 0.0, "schedule": "default",
                 "stream_rate": None, "bucket": False, "select_on": "loss"}
"""Training options newer than some recorded runs, with the value those runs trained with (what a config.json
without the key means when a run is resumed)."""


def configure(preset: str, config: str | Path | dict | None = None, **overrides: Any) -> tuple[Any, TrainConfig]:
    """(MCRConfig, TrainConfig) of ``preset`` (Table 1) with a config file's (or dict's) settings, then ``overrides``.

    The file (JSON or TOML) holds the preset's keys (``batch_size``, ``lr``, ``epochs``, a ``model`` table of
    MCRConfig fields) and any TrainConfig field, top level or in a ``train`` table. ``overrides``: TrainConfig
    fields (None values are ignored), e.g. the command line's.
    """
    from model import MCRConfig, check_size, load_preset
    from model.presets import apply_overrides, read_overrides

    path = f"{config}: [config] " if isinstance(config, (str, Path)) else ""  # a dict's caller names its file
    settings = read_overrides(config) if isinstance(config, (str, Path)) else (config or {})
    tables = {"the file": settings, **({k: settings.get(k) or {} for k in ("train", "model")}
                                       if isinstance(settings, dict) else {})}
    for table, value in tables.items():
        if not isinstance(value, dict):
            raise ValueError(f"{path}{table} must be a table of options, not {type(value).__name__}")
    settings = dict(settings)
    train_settings = dict(settings.pop("train", {}) or {})
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset"}
    for key in [k for k in settings if k in train_fields and k not in ("batch_size", "lr", "epochs", "extra")]:
        train_settings[key] = settings.pop(key)
    check_fields(TrainConfig, {**settings, **train_settings}, lambda key: f"{path}{key}")
    check_fields(MCRConfig, settings.get("model") or {}, lambda key: f"{path}model.{key}")
    try:
        p = apply_overrides(load_preset(preset), settings)
        check_size(p.model)  # with the preset's input sizes; training checks again with the data's
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}{exc}") from None
    tcfg = TrainConfig.from_dict({"preset": preset, "batch_size": p.batch_size, "lr": p.lr, "epochs": p.epochs,
                                  **train_settings, **{k: v for k, v in overrides.items() if v is not None}})
    return p.model, tcfg


def fit_model_to_data(model_cfg, split: ArraySplit, *, rates: dict[str, float] | None = None,
                      stream_rate: float | None = None):
    """The model config with the data's feature sizes, task and number of classes, and the stream pooling.

    rates: steps per second of the data's streams by modality name (``acoustic``...; what a store records, the
        ``rates`` of :func:`pipeline.store_source.store_description`); with ``stream_rate``
        (``TrainConfig.stream_rate``) a stream faster than it is pooled by ``int(rate // stream_rate)``
        (``pool_a``...); the config's own pool_* otherwise.
    """
    d_l, d_v, d_a = split.dims
    changes: dict[str, Any] = {"d_l": d_l, "d_v": d_v, "d_a": d_a, "task": split.task}
    if split.task == "classification":
        changes["n_classes"] = len(split.classes) if split.classes else int(split.labels.max()) + 1
    if stream_rate is not None:
        for m, name in zip("lva", MODALITIES):
            rate = (rates or {}).get(name)
            if rate:
                changes[f"pool_{m}"] = max(1, int(rate // stream_rate + 1e-9))
    return model_cfg.replace(**changes)
