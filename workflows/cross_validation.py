"""K-fold cross-validation by group (``mcr train --cv K --group-by actor``): every labelled sample tested exactly
once, by a model that never saw its group (speaker, actor, session, video) in training or validation.

The source's own splits are ignored: all its labelled samples are pooled and cut by
:func:`pipeline.arrays.group_cv_folds` (fold f tests the f-th run of the sorted groups and validates, for early
stopping and model selection, on the first half of the next run's groups; the other groups train). Fold f is an
ordinary run in ``RUN/fold-<f>/`` (:func:`workflows.train.train_run`: resumable, a finished fold is only evaluated
again), so a rerun of the same command continues where it stopped. With ``seeds`` N > 1 (``--seeds N``) each fold
trains N seeds (``RUN/fold-<f>/seed-<s>/``, as :func:`workflows.train.train_seeds`) and its test outputs are the
mean of the N models' outputs (logits, or a regression's values): an ensemble, which on RAVDESS scored above any
one seed (docs/benchmarks.md). ``RUN/cv.json``::

    {"k", "group_by", "task", "classes", "seconds", "seeds",
     "pooled": {"accuracy", "unweighted_accuracy", "macro_f1", "confusion": {"classes", "matrix"}},
     "folds": [{"fold", "test_groups", "valid_groups", "n_test", "accuracy", "unweighted_accuracy", "macro_f1",
                "seconds", "best_epoch"}, ...]}

(``best_epoch``: a list, one per seed, when there are several.)

``pooled``: the metrics of all test predictions together (each sample predicted by its fold's model); a regression
or iemocap task has its own metrics (:func:`pipeline.metrics.compute_metrics`) in place of the three figures.
``seconds``: the folds' training times and this command's loading. ``RUN/fold-<f>/fold.json`` records the fold's
groups and training time.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline import metrics as M
from pipeline.arrays import ArraySplit, concat_splits, group_cv_folds
from pipeline.files import write_json
from pipeline.sources import load_source
from workflows.inference import predict_arrays
from workflows.runs import load_run
from workflows.train import train_run

VIDEO = "video_id"
CLASS_FIGURES = {"accuracy": "acc", "unweighted_accuracy": "unweighted_accuracy", "macro_f1": "macro_f1"}


def labelled_samples(source, group_by: str, *, aligned: bool = False, max_len: int | None = None,
                     trust_pickle: bool = False) -> tuple[ArraySplit, np.ndarray]:
    """Every labelled sample of ``source`` in one split, and each sample's group: the value of the store segments'
    column ``group_by`` (any column of the manifest: ``actor``, ``speaker``...), or its video for ``video_id``
    (any source). -> (split, (N,) groups)."""
    splits = load_source(source, trust_pickle=trust_pickle, aligned=aligned, max_len=max_len)
    whole = concat_splits(list(splits.values()))
    if group_by == VIDEO:
        if whole.video_ids is None:
            raise ValueError(f"{source}: [cv] the data names no video per sample to group by")
        return whole, np.asarray(whole.video_ids)
    segments_file = Path(source) / "segments.parquet"
    if not segments_file.is_file():
        raise ValueError(f"{source}: [cv] --group-by {group_by!r} needs a feature store's segments; "
                         f"this source can only be grouped by {VIDEO}")
    from pipeline.store import FeatureStore

    segments = FeatureStore(source).segments()
    if group_by not in segments.columns:
        raise ValueError(f"{source}: [cv] the store's segments have no {group_by!r} column to group by; columns: "
                         f"{', '.join(map(str, segments.columns))}")
    value_of = {(str(v), str(s)): g for v, s, g in zip(segments["video_id"], segments["segment_id"],
                                                        segments[group_by])}
    groups = [value_of.get((str(v), str(s))) for v, s in zip(whole.video_ids, whole.ids)]
    missing = [s for s, g in zip(whole.ids, groups) if g is None or g != g or g == ""]
    if missing:
        raise ValueError(f"{source}: [cv] {len(missing)} labelled segments (e.g. {missing[0]}) have no "
                         f"{group_by!r}; fill the column in the manifest and run `mcr label`")
    return whole, np.asarray([_plain(g) for g in groups])


def _plain(value):
    """A group value as JSON shows it: whole numbers (actor 1.0) as ints."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


def cross_validate(whole: ArraySplit, groups: np.ndarray, model_cfg, tcfg, out: str | Path, *, k: int,
                   group_by: str, seeds: int = 1, data_info: dict | None = None, progress: bool = True,
                   log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Train and test the ``k`` folds of ``whole`` by ``groups`` into ``out``; write and return ``cv.json``.

    whole, groups: from :func:`labelled_samples`. model_cfg: already fitted to the data
    (:func:`workflows.train_config.fit_model_to_data`). seeds: models per fold (``tcfg.seed``, +1, ...), their
    outputs averaged. data_info: what each fold's config.json records.
    """
    assert seeds >= 1, f"seeds must be at least 1, got {seeds}"
    started, out = time.time(), Path(out)
    folds = group_cv_folds(groups.tolist(), k)
    outputs = np.zeros((len(whole), model_cfg.output_dim), np.float32)
    rows, earlier = [], 0.0
    for f, fold in enumerate(folds):
        fold_dir = out / f"fold-{f}"
        plan = {"fold": f, "k": k, "group_by": group_by, "seeds": seeds,
                "test_groups": sorted(set(groups[fold["test"]].tolist())),
                "valid_groups": sorted(set(groups[fold["valid"]].tolist()))}
        record = _fold_record(fold_dir)
        if record and "seeds" not in record:  # written before folds recorded their seeds: count the seeds' folders
            record["seeds"] = len(list(fold_dir.glob("seed-*"))) or 1
        if record and {key: record.get(key) for key in plan} != plan:
            raise ValueError(f"{fold_dir}: [cv] holds a fold of other groups or seeds (other data, --cv, "
                             "--group-by or --seeds); choose another --out")
        log(f"fold {f}/{k}: test {group_by} {_names(plan['test_groups'])}, valid {_names(plan['valid_groups'])}")
        fold_started = time.time()
        splits = {name: whole.subset(index) for name, index in fold.items()}
        runs = [fold_dir] if seeds == 1 else [fold_dir / f"seed-{tcfg.seed + s}" for s in range(seeds)]
        best_epochs = []
        for s, run_dir in enumerate(runs):
            result = train_run(splits, model_cfg, dataclasses.replace(tcfg, seed=tcfg.seed + s), run_dir,
                               data_info=dict(data_info or {}, cv=plan), progress=progress, log=log)
            best_epochs.append(result["best_epoch"])
        if record.get("seconds") is not None:
            seconds = record["seconds"]
            earlier += seconds
        else:
            seconds = round(time.time() - fold_started, 1)
            write_json(fold_dir / "fold.json", dict(plan, seconds=seconds))
        outputs[fold["test"]] = np.mean([_test_outputs(run_dir, splits["test"], tcfg.eval_batch_size)
                                         for run_dir in runs], axis=0)
        rows.append(dict(plan, n_test=len(fold["test"]),
                         **_figures(whole.task, outputs[fold["test"]], whole.labels[fold["test"]]),
                         seconds=seconds, best_epoch=best_epochs[0] if seeds == 1 else best_epochs))
        for key in ("k", "group_by", "seeds"):
            rows[-1].pop(key)
    confusion = M.confusion(whole.task, outputs, whole.labels, whole.classes)
    pooled = dict(_figures(whole.task, outputs, whole.labels),
                  confusion=confusion["classification"] if whole.task == "classification" else confusion)
    summary = M.jsonable({"k": k, "group_by": group_by, "task": whole.task, "classes": whole.classes,
                          "seconds": round(time.time() - started + earlier, 1), "seeds": seeds, "pooled": pooled,
                          "folds": rows})
    write_json(out / "cv.json", summary)
    return summary


def _test_outputs(run_dir: Path, test: ArraySplit, batch_size: int) -> np.ndarray:
    """(N, output_dim) outputs of the model kept in ``run_dir`` on the fold's test samples."""
    trained = load_run(run_dir)
    return predict_arrays(trained.model, test, normalizer=trained.normalizer,
                          batch_size=batch_size).reshape(len(test), -1)


def _fold_record(fold_dir: Path) -> dict:
    try:
        return json.loads((fold_dir / "fold.json").read_text())
    except (OSError, ValueError):
        return {}


def _figures(task: str, outputs: np.ndarray, labels: np.ndarray) -> dict:
    """accuracy, unweighted_accuracy and macro_f1 of a classification; the task's own metrics otherwise."""
    metrics = M.compute_metrics(task, outputs, labels)
    if task != "classification":
        return metrics
    return {name: metrics[key] for name, key in CLASS_FIGURES.items()}


def _names(values: list) -> str:
    return ",".join(map(str, values))


def format_cv(summary: dict) -> str:
    """The per-fold and pooled figures of a ``cv.json`` as a plain-text table."""
    pooled = summary["pooled"]
    names = list(CLASS_FIGURES) if summary["task"] == "classification" else [n for n in pooled if n != "confusion"]
    widths = [max(len(n), 6) + 2 for n in names]
    groups = max(len(summary["group_by"]) + 5, *(len(_names(r["test_groups"])) for r in summary["folds"])) + 2

    def line(fold, tested, n, values, epoch, seconds) -> str:
        cells = "".join(f"{_fmt(v):>{w}}" for v, w in zip(values, widths))
        return f"{fold:<7}{tested:<{groups}}{n:>6}{cells}{epoch:>12}{seconds:>9}"

    lines = [f"{'fold':<7}{'test ' + summary['group_by']:<{groups}}{'n':>6}"
             + "".join(f"{n:>{w}}" for n, w in zip(names, widths)) + f"{'best epoch':>12}{'seconds':>9}"]
    for r in summary["folds"]:
        epoch = _names(r["best_epoch"]) if isinstance(r["best_epoch"], list) else r["best_epoch"]
        lines.append(line(r["fold"], _names(r["test_groups"]), r["n_test"], [r[n] for n in names], epoch,
                          f"{r['seconds']:.0f}"))
    lines.append(line("pooled", "", sum(r["n_test"] for r in summary["folds"]), [pooled[n] for n in names], "",
                      f"{summary['seconds']:.0f}"))
    return "\n".join(lines)


def _fmt(value) -> str:
    return "nan" if value is None else f"{value:.4f}"
