"""Evaluate a trained run (its best validation weights) on one split of a data source."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import metrics as M
from pipeline.arrays import ArraySplit, ensure_splits
from pipeline.files import write_json
from pipeline.sources import load_source
from workflows.inference import predict_arrays, require_finite
from workflows.runs import TrainedRun, load_run, run_dirs, summarize


def split_of(source: str | Path, split: str, run: TrainedRun, *, trust_pickle: bool = False) -> ArraySplit:
    """The ``split`` of ``source``, read as the run's training data was (aligned view, max_len, cut by video)."""
    splits = load_source(source, trust_pickle=trust_pickle, aligned=run.aligned, max_len=run.max_len)
    if split not in splits:
        try:
            splits = ensure_splits(splits)  # a source without splits is cut the same way training cut it
        except ValueError as exc:
            raise ValueError(f"{source}: [evaluate] {exc}") from None
    if split not in splits:
        raise ValueError(f"{source}: [evaluate] no split {split!r}; it has {', '.join(sorted(splits))}")
    return splits[split]


def evaluate_run(run: str | Path, source: str | Path, *, split: str = "test", trust_pickle: bool = False,
                 write: bool = True) -> dict:
    """Metrics of every seed of ``run`` on ``split`` of ``source`` (and mean ± std with several seeds): the task's
    metrics of :func:`pipeline.metrics.compute_metrics` (for a classification: ``acc``, ``f1``,
    ``unweighted_accuracy``, ``macro_f1``; per emotion and their means for iemocap).

    Returns ``{"split", "source", "seeds": {run_dir: metrics}, "summary": {metric: {mean, std}} | None,
    "confusion": the first seed's confusion matrices}``; written to ``RUN/eval-<split>.json`` when ``write``.
    """
    per_seed, confusion, data = {}, None, None
    for run_dir in run_dirs(run):
        trained = load_run(run_dir)
        cfg = trained.config
        if data is None:
            data = split_of(source, split, trained, trust_pickle=trust_pickle)
            if data.task != cfg.task or data.dims != (cfg.d_l, cfg.d_v, cfg.d_a):
                raise ValueError(f"{source}: [evaluate] {data.task} data with features {data.dims} does not fit a "
                                 f"{cfg.task} model for {(cfg.d_l, cfg.d_v, cfg.d_a)}")
        outputs = require_finite(predict_arrays(trained.model, data, normalizer=trained.normalizer),
                                 trained.checkpoint, data.ids, stage="evaluate")
        per_seed[str(run_dir)] = M.compute_metrics(cfg.task, outputs, data.labels)
        if confusion is None:
            confusion = M.confusion(cfg.task, outputs, data.labels, trained.classes)
    results = list(per_seed.values())
    summary = summarize([{split: r} for r in results], (split,)).get(split) if len(results) > 1 else None
    result = M.jsonable({"split": split, "source": str(source), "n": len(data), "seeds": per_seed,
                         "summary": summary, "confusion": confusion})
    if write:
        write_json(Path(run) / f"eval-{split}.json", result)
    return result


def mean_metrics(result: dict) -> dict[str, float]:
    """{metric: value} of an :func:`evaluate_run` result: the single seed's, or the means over seeds."""
    if result["summary"]:
        return {k: v["mean"] for k, v in result["summary"].items()}
    (only,) = result["seeds"].values()
    return {k: (np.nan if v is None else v) for k, v in only.items()}
