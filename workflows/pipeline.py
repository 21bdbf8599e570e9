"""The whole pipeline from one TOML config: extract -> dataset -> train -> evaluate -> predict -> report.

Stages whose inputs have not changed are skipped (:mod:`workflows.stages`); extraction is idempotent by itself
(videos already in the store for the same source hash and extractor configs are not recomputed). Relative paths
in the config are relative to the config file. A config::

    workdir = "out"                      # stage records (stages.json) and default outputs

    [extract]
    input = "corpus/manifest.csv"        # folder of videos or manifest CSV (labels and splits for training)
    store = "out/store"
    workers = 2                          # local Dask workers (default: one per core)
    # scheduler = "tcp://host:8786"      # or an existing cluster
    # visual = "pyfeat"                  # visual backend (default mediapipe)

    [train]
    preset = "mosi"                      # Table 1 column
    out = "out/run"
    seeds = 1
    epochs = 20                          # any training option (workflows.train.TrainConfig)
    [train.model]                        # any MCRConfig field
    n_layers = 2

    [evaluate]
    split = "test"

    [predict]                            # optional
    input = "new_videos/"
    out = "out/predictions.parquet"
    vtt = "out/subtitles"                # optional WebVTT per video
    # store = "out/predict-store"        # where new videos are extracted (default: <out>.store); keep it apart
                                         # from the training store, whose segments define the dataset
    # window = 10                        # fixed windows instead of utterances

    [report]                             # optional; written to <train.out>/report
"""
from __future__ import annotations

import hashlib
import json
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

from workflows.checkpoint import write_json
from workflows.stages import Stage, StageRunner

PATH_KEYS = {"extract": ("input", "store"), "train": ("out",), "predict": ("input", "out", "vtt", "store")}
SECTIONS = {"workdir", "extract", "train", "evaluate", "predict", "report"}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a pipeline TOML and make its paths absolute (relative to the file)."""
    path = Path(path)
    try:
        config = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: [config] no such pipeline config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: [config] not valid TOML: {exc}") from None
    return resolve_paths(config, path.parent)


def resolve_paths(config: dict[str, Any], base: Path) -> dict[str, Any]:
    unknown = set(config) - SECTIONS
    if unknown:
        raise ValueError(f"[config] unknown sections {sorted(unknown)}; known: {sorted(SECTIONS)}")
    for section in ("extract", "train"):
        if section not in config:
            raise ValueError(f"[config] the [{section}] section is required")
    config = json.loads(json.dumps(config))  # a deep copy
    config["workdir"] = str((base / config.get("workdir", ".")).resolve())
    for section, keys in PATH_KEYS.items():
        for key in keys:
            if config.get(section, {}).get(key):
                config[section][key] = str((base / config[section][key]).resolve())
    for key in ("input", "store"):
        if key not in config["extract"]:
            raise ValueError(f"[config] [extract] needs {key!r}")
    config["train"].setdefault("out", str(Path(config["workdir"]) / "run"))
    return config


def build_stages(config: dict[str, Any], *, client: Callable[[], Any], log: Callable[[str], None] = print
                 ) -> list[Stage]:
    """The pipeline's stages for ``config`` (see the module docstring); ``client()`` gives the Dask client."""
    ex, tr = config["extract"], dict(config["train"])
    ev, pr, rp = config.get("evaluate", {"split": "test"}), config.get("predict"), config.get("report", {})
    store, run_dir = ex["store"], tr.pop("out")
    preset, seeds = tr.pop("preset", "mosi"), int(tr.pop("seeds", 1))

    def extract():
        from pipeline.corpus import load_corpus
        from workflows.extract import build_extractors, extract_corpus

        summary = extract_corpus(load_corpus(ex["input"]), store, client=client(),
                                 extractors=build_extractors({"visual": ex["visual"]} if ex.get("visual") else None))
        log(f"[extract] {summary.done} done, {summary.skipped} skipped, {summary.failed} failed")
        for f in summary.failures:
            log(f"[extract] failed: {f.get('path')} [{f.get('stage')}] {f.get('message')}")

    def dataset():
        from pipeline.datasets import ensure_splits, load_source

        splits = ensure_splits(load_source(store, aligned=bool(tr.get("aligned", False)), max_len=tr.get("max_len")))
        counts = {k: len(v) for k, v in splits.items()}
        log(f"[dataset] {counts}")
        write_json(Path(config["workdir"]) / "dataset.json", {"store": store, "splits": counts})

    def train():
        from workflows.commands.train import format_metrics, load_training_data
        from workflows.train import configure, fit_model_to_data, holds_other_run, train_seeds

        model_cfg, tcfg = configure(preset, tr)
        splits, data_info = load_training_data(store, tcfg)
        model_cfg = fit_model_to_data(model_cfg, splits["train"])
        if holds_other_run(run_dir, model_cfg, tcfg, data_info):  # the config changed: keep the old run aside
            kept = Path(f"{run_dir}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            Path(run_dir).rename(kept)
            log(f"[train] the configuration changed; the previous run was moved to {kept}")
        result = train_seeds(splits, model_cfg, tcfg, run_dir, n_seeds=seeds, data_info=data_info)
        log(format_metrics(result))

    def evaluate():
        from workflows.evaluate import evaluate_run, mean_metrics

        result = evaluate_run(run_dir, store, split=ev.get("split", "test"))
        log(f"[evaluate] {ev.get('split', 'test')}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in mean_metrics(result).items() if isinstance(v, float)))

    def predict():
        from workflows.predict import predict_videos

        frame = predict_videos(pr["input"], run_dir, pr["out"], store=pr.get("store"),
                               window=pr.get("window") or None, vtt_dir=pr.get("vtt"), client=client())
        log(f"[predict] {len(frame)} segments -> {pr['out']}")

    def report():
        from workflows.evaluate import split_of
        from workflows.report import write_report
        from workflows.train import load_run

        _, _, info = load_run(run_dir)
        split = split_of(store, ev.get("split", "test"), info)
        log(f"[report] {write_report(run_dir, split=split)}")

    workdir = Path(config["workdir"])
    stages = [
        Stage("extract", ex, extract, input_files=(ex["input"],), outputs=(str(Path(store) / "videos.parquet"),),
              always=True),
        Stage("dataset", lambda: {"aligned": tr.get("aligned"), "max_len": tr.get("max_len"),
                                  "store": store_digest(store)}, dataset, after=("extract",),
              outputs=(str(workdir / "dataset.json"),)),
        Stage("train", {"preset": preset, "seeds": seeds, **tr}, train, after=("dataset",),
              outputs=(str(Path(run_dir) / "config.json"),) if seeds == 1 else (str(Path(run_dir) / "summary.json"),)),
        Stage("evaluate", ev, evaluate, after=("train",),
              outputs=(str(Path(run_dir) / f"eval-{ev.get('split', 'test')}.json"),)),
    ]
    if pr:
        stages.append(Stage("predict", pr, predict, after=("train",), input_files=(pr["input"],),
                            outputs=(pr["out"],)))
    if rp is not None:
        stages.append(Stage("report", rp, report, after=("evaluate",),
                            outputs=(str(Path(run_dir) / "report" / "index.html"),)))
    return stages


def run_pipeline(config: dict[str, Any] | str | Path, *, force: bool = False, client=None,
                 log: Callable[[str], None] = print) -> dict[str, str]:
    """Run (or resume) the pipeline; returns {stage: "ran" | "skipped"}."""
    if not isinstance(config, dict):
        config = load_config(config)
    started = []

    def get_client():  # one cluster for every stage that needs one, started only when one does
        if client is not None:
            return client
        if not started:
            if config["extract"].get("scheduler"):
                from distributed import Client

                started.append(Client(config["extract"]["scheduler"]))
            else:
                from workflows.extract import local_client

                started.append(local_client(config["extract"].get("workers")))
        return started[0]

    runner = StageRunner(config["workdir"], force=force, log=log)
    try:
        return runner.run(build_stages(config, client=get_client, log=log))
    finally:
        for c in started:
            cluster = c.cluster
            c.close()
            if cluster is not None:
                cluster.close()


def store_digest(store: str) -> str:
    """A hash of what the store holds for training: each video's source hash, status and extractor configs, and
    the segments with their labels. Rewriting the files with the same content leaves it unchanged."""
    from pipeline.store import FeatureStore

    fs = FeatureStore(store)
    videos = fs.videos()
    keep = [c for c in videos.columns if c in ("video_id", "sha256", "status") or c.endswith("_config_hash")]
    blob = videos[keep].sort_values("video_id").to_json(orient="records") + fs.segments().sort_values(
        ["video_id", "segment_id"]).to_json(orient="records")
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
