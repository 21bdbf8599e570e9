"""The whole pipeline from one TOML config: [prepare ->] extract -> dataset -> train -> evaluate -> predict -> report.

Stages whose inputs have not changed are skipped (:mod:`workflows.stages`); extraction is idempotent by itself
(videos already in the store for the same source hash and extractor configs are not recomputed). The config format
and its strict reader are in :mod:`workflows.pipeline_config`. The Dask client comes from the caller (``mcr run``
opens one); without one, the client this process has open is used.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from pipeline.files import sha256_text, write_json
from workflows.pipeline_config import PipelineConfig, load_config
from workflows.stages import Stage, StageRunner


def build_stages(config: PipelineConfig, *, client=None, log: Callable[[str], None] = print) -> list[Stage]:
    """The pipeline's stages for ``config``; ``client``: the Dask client of extraction and prediction."""
    ex, tr, ev, pr, rp = config.extract, config.train, config.evaluate, config.predict, config.report
    store, run_dir = ex.store, tr.out
    train_options = tr.options

    def prepare():
        from pipeline.recipes import prepare_manifest

        pp = config.prepare
        prepared = prepare_manifest(pp.corpus, pp.raw, pp.out, **pp.options)
        log(f"[prepare] {pp.corpus}: {len(prepared.rows)} segments of {prepared.videos} videos -> {pp.out}"
            + (f"; {len(prepared.missing)} files named by the labels are missing" if prepared.missing else ""))

    def extract():
        from pipeline.corpus import load_corpus
        from workflows.extract import build_extractors, extract_corpus

        summary = extract_corpus(load_corpus(ex.input), store, client=client,
                                 extractors=build_extractors(ex.extractor_names()))
        log(f"[extract] {summary.done} done, {summary.skipped} skipped, {summary.failed} failed")
        for f in summary.failures:
            log(f"[extract] failed: {f.get('path')} [{f.get('stage')}] {f.get('message')}")
        for f in summary.skipped_files:
            log(f"[extract] passed over: {f.get('path')} ({f.get('reason')})")
        for line in summary.warning_lines():
            log(f"[extract] warning: {line}")

    def dataset():
        from pipeline.sources import training_splits

        splits, _ = training_splits(store, aligned=bool(train_options.get("aligned", False)),
                                    max_len=train_options.get("max_len"))
        counts = {k: len(v) for k, v in splits.items()}
        log(f"[dataset] {counts}")
        write_json(Path(config.workdir) / "dataset.json", {"store": store, "splits": counts})

    def train():
        from pipeline.sources import training_splits
        from workflows.runs import format_metrics, holds_other_run
        from workflows.train import train_seeds
        from workflows.train_config import configure, fit_model_to_data

        model_cfg, tcfg = configure(tr.preset, train_options)
        splits, data_info = training_splits(store, aligned=tcfg.aligned, max_len=tcfg.max_len)
        model_cfg = fit_model_to_data(model_cfg, splits["train"], rates=data_info["rates"],
                                      stream_rate=tcfg.stream_rate)
        if holds_other_run(run_dir, model_cfg, tcfg, data_info):  # the config changed: keep the old run aside
            kept = Path(f"{run_dir}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            Path(run_dir).rename(kept)
            log(f"[train] the configuration changed; the previous run was moved to {kept}")
        result = train_seeds(splits, model_cfg, tcfg, run_dir, n_seeds=tr.seeds, data_info=data_info)
        log(format_metrics(result))

    def evaluate():
        from workflows.evaluate import evaluate_run, mean_metrics

        result = evaluate_run(run_dir, store, split=ev.split)
        log(f"[evaluate] {ev.split}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in mean_metrics(result).items() if isinstance(v, float)))

    def predict():
        from workflows.predict import predict_videos

        frame = predict_videos(pr.input, run_dir, pr.out, store=pr.store, window=pr.window or None,
                               vtt_dir=pr.vtt, srt_dir=pr.srt, json_dir=pr.json, client=client)
        log(f"[predict] {len(frame)} segments -> {pr.out}")

    def report():
        from workflows.evaluate import split_of
        from workflows.report import write_report
        from workflows.runs import load_run

        split = split_of(store, ev.split, load_run(run_dir))
        log(f"[report] {write_report(run_dir, split=split, sample=rp.sample, layer=rp.layer)}")

    workdir = Path(config.workdir)
    extract_options = {k: v for k, v in dataclasses.asdict(ex).items() if k not in ("workers", "scheduler")}
    train_identity = {"preset": tr.preset, "seeds": tr.seeds, **train_options}
    stages = [Stage("prepare", dataclasses.asdict(config.prepare), prepare, outputs=(config.prepare.out,),
                    always=True)] if config.prepare else []  # reads file names only: cheap, and rerun each time
    stages += [
        Stage("extract", extract_options, extract, input_files=(ex.input,),
              outputs=(str(Path(store) / "videos.parquet"),), always=True),
        Stage("dataset", lambda: {"aligned": train_options.get("aligned"), "max_len": train_options.get("max_len"),
                                  "store": store_digest(store)}, dataset, after=("extract",),
              outputs=(str(workdir / "dataset.json"),)),
        Stage("train", train_identity, train, after=("dataset",),
              outputs=(str(Path(run_dir) / ("config.json" if tr.seeds == 1 else "summary.json")),)),
        Stage("evaluate", dataclasses.asdict(ev), evaluate, after=("train",),
              outputs=(str(Path(run_dir) / f"eval-{ev.split}.json"),)),
    ]
    if pr:
        stages.append(Stage("predict", dataclasses.asdict(pr), predict, after=("train",), input_files=(pr.input,),
                            outputs=(pr.out,)))
    stages.append(Stage("report", dataclasses.asdict(rp), report, after=("evaluate",),
                        outputs=(str(Path(run_dir) / "report" / "index.html"),)))
    return stages


def run_pipeline(config: PipelineConfig | str | Path, *, force: bool = False, client=None,
                 log: Callable[[str], None] = print) -> dict[str, str]:
    """Run (or resume) the pipeline; returns {stage: "ran" | "skipped"}.

    client: the Dask client for extraction and prediction; None: the one this process has open.
    """
    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    runner = StageRunner(config.workdir, force=force, log=log)
    return runner.run(build_stages(config, client=client, log=log))


def store_digest(store: str) -> str:
    """A hash of what the store holds for training: each video's source hash, status and the extractor configs of
    the model's streams (not the voice stream), and the segments with their labels. Rewriting the files with the
    same content leaves it unchanged."""
    from pipeline.arrays import MODALITIES
    from pipeline.store import FeatureStore

    fs = FeatureStore(store)
    videos = fs.videos()
    hashes = [f"{m}_config_hash" for m in MODALITIES]
    keep = [c for c in videos.columns if c in ("video_id", "sha256", "status", *hashes)]
    blob = videos[keep].sort_values("video_id").to_json(orient="records") + fs.segments().sort_values(
        ["video_id", "segment_id"]).to_json(orient="records")
    return sha256_text(blob)[:16]
