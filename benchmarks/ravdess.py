"""RAVDESS speech, 6-fold actor-independent cross-validation: MCR, MulT, the Table 5 single-modality switches, a
linear probe of every acoustic stream and the majority class, all on the same folds, in one run.

    python benchmarks/ravdess.py RAVDESS_DIR [--work runs/ravdess] [--write]
    python benchmarks/ravdess.py RAVDESS_DIR --manifest m.csv --store s/ --models mcr --probes librosa
    python benchmarks/ravdess.py RAVDESS_DIR --store s/ --no-extract    # stores extracted before, used as they are

RAVDESS_DIR is the release's folder of ``Actor_01`` ... ``Actor_24`` (the speech audio, ``03-01-*.wav``; the
audio-video files work too). The script runs what a user runs:

1. ``mcr prepare ravdess RAVDESS_DIR --split actors --modality audio --channel speech`` (1,440 clips, 8 emotions);
2. ``mcr extract`` into the store (the default streams), and once per other acoustic extractor into
   ``STORE-<name>``: a copy of the store whose acoustic stream is recomputed (language and visual are kept);
3. ``mcr train --data STORE --cv 6 --group-by actor`` for each model, reading ``RUN/cv.json``;
4. the linear probe (benchmarks/pooled_probe.py) of each store's acoustic stream, and the majority class, on the
   test actors of MCR's folds (consecutive actors, 1-4, 5-8, ..., when no model was trained).

Runs are kept under ``--work`` and resumed (``mcr train`` resumes, ``mcr extract`` skips what is done). With
``--write`` the table goes into the ``ravdess`` section of docs/benchmarks.md and the pooled confusion matrix of
the best row into docs/images/ravdess-confusion.png.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pooled_probe import block_folds, cross_validate, pooled_stream  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402

MODELS = {"mcr": ("MCR", []), "mult": ("MulT", ["--arch", "mult"]),
          "audio_only": ("MCR acoustic only (Table 5 switch)", ["--ablation", "audio_only"]),
          "language_only": ("MCR language only (Table 5 switch)", ["--ablation", "language_only"])}
IMAGE = ROOT / "docs" / "images" / "ravdess-confusion.png"
EXTRACT_RECORD = "benchmark-extract.json"  # in each store: what extracting it cost
TRAINING = ROOT / "benchmarks" / "ravdess_cv.toml"  # the CVs' epochs, early stopping and model selection
PUBLISHED = [
    "Luna-Jiménez et al., *Applied Sciences* 12(1):327, 2022: **86.70 % accuracy**, 8 emotions, audio **and video** "
    "(a fine-tuned xlsr-Wav2Vec2.0 on the speech plus facial action units, late fusion), subject-wise 5-fold "
    "cross-validation (speaker-independent, like ours, but with the faces our audio-only run does not have).",
]


def mcr(*args: str) -> None:
    """Run one ``mcr`` command in a subprocess (what a user runs), failing loudly."""
    command = [sys.executable, "-m", "workflows.cli", *args]
    print("$ mcr " + " ".join(args), flush=True)
    done = subprocess.run(command, cwd=ROOT, check=False)
    if done.returncode not in (0, 1):  # 1: some videos failed, listed by mcr extract itself
        raise RuntimeError(f"mcr {args[0]} exited with {done.returncode}")


def extract(manifest: Path, store: Path, acoustic: str, *, workers: int, language: str | None,
            seed_store: Path | None) -> dict:
    """Extract ``manifest`` into ``store`` with the acoustic extractor ``acoustic``; what it cost.

    seed_store: a store of the same manifest to copy first (its language and visual streams are reused, only the
    acoustic stream is computed). The cost (wall seconds, videos and media seconds computed) is kept in
    ``store/benchmark-extract.json``, so a rerun that finds everything done still reports it.
    """
    import pandas as pd

    from pipeline.store import FeatureStore

    if seed_store is not None and not store.exists():
        shutil.copytree(seed_store, store)
    started_at = pd.Timestamp.now(tz="UTC").floor("s")
    started = time.perf_counter()
    mcr("extract", str(manifest), "--store", str(store), "--acoustic", acoustic, "--workers", str(workers),
        "--no-progress", *(["--language", language] if language else []))
    wall = time.perf_counter() - started
    videos = FeatureStore(store).videos()
    fresh = videos[pd.to_datetime(videos["updated"], utc=True) >= started_at]
    if len(fresh):
        cost = {"acoustic": acoustic, "wall_seconds": wall, "videos": len(fresh),
                "media_seconds": float(fresh["duration"].sum()), "workers": workers,
                "reused_streams": seed_store is not None, "date": time.strftime("%Y-%m-%d")}
        (store / EXTRACT_RECORD).write_text(json.dumps(cost, indent=1))
    return recorded_cost(store, acoustic)


def recorded_cost(store: Path, acoustic: str) -> dict:
    """What extracting ``store`` cost, as its ``benchmark-extract.json`` says (``videos`` 0 when it says nothing)."""
    if not (store / "segments.parquet").exists():
        raise FileNotFoundError(f"{store}: [ravdess] no store there (run without --no-extract to extract it)")
    record = store / EXTRACT_RECORD
    return json.loads(record.read_text()) if record.exists() else {"acoustic": acoustic, "videos": 0}


def cross_validation(store: Path, run: Path, model_args: list[str], args) -> dict:
    """``mcr train --cv`` of one model on ``store``; its ``cv.json``."""
    if not (run / "cv.json").exists():
        mcr("train", "--data", str(store), "--cv", str(args.folds), "--group-by", args.group_by, "--out", str(run),
            "--preset", args.preset, "--no-progress", *model_args, *(["--config", str(args.config)] if args.config
                                                                     else []),
            *(["--epochs", str(args.epochs)] if args.epochs else []),
            *(["--seeds", str(args.seeds)] if args.seeds > 1 else []))
    return json.loads((run / "cv.json").read_text())


def folds_of(cv: dict) -> list[list[str]]:
    """The test groups of each fold of a cv.json, as the probe's folds."""
    from benchmarks.pooled_probe import group_name

    return [[group_name(g) for g in fold["test_groups"]] for fold in cv["folds"]]


def row(name: str, streams: str, result: dict, seconds: float) -> dict:
    pooled = result["pooled"]
    return {"name": name, "streams": streams, "accuracy": pooled["accuracy"],
            "unweighted_accuracy": pooled["unweighted_accuracy"], "macro_f1": pooled["macro_f1"],
            "seconds": seconds, "confusion": pooled["confusion"]}


def table(rows: list[dict]) -> list[str]:
    lines = ["| Model | streams | accuracy | unweighted accuracy | macro-F1 | training time (all folds) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        time_text = f"{r['seconds'] / 60:.1f} min" if r["seconds"] >= 60 else f"{r['seconds']:.1f} s"
        lines.append(f"| {r['name']} | {r['streams']} | {r['accuracy']:.3f} | {r['unweighted_accuracy']:.3f} | "
                     f"{r['macro_f1']:.3f} | {time_text} |")
    return lines


def pictured(rows: list[dict]) -> dict:
    """The row whose confusion matrix is drawn: the best MCR row by unweighted accuracy (the model a user trains),
    else the best row."""
    models = [r for r in rows if r["name"].startswith("MCR")] or rows
    return max(models, key=lambda r: r["unweighted_accuracy"])


def plot(best: dict, path: Path) -> None:
    """The pooled confusion matrix of ``best`` (a row), class names on the axes."""
    import matplotlib

    matplotlib.use("Agg")
    from workflows.report import plot_confusion

    cm = best["confusion"]
    names = [str(c) for c in cm["classes"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_confusion({"emotion": {"classes": names, "matrix": cm["matrix"]}}, path,
                   f"RAVDESS speech, {best['name'].replace('`', '')}\npooled over the actor-independent folds")


def main(argv: list[str] | None = None) -> int:
    from extractors.base import DEFAULT_EXTRACTORS, available

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("raw", type=Path, metavar="RAVDESS_DIR", help="the release's folder of Actor_XX folders")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ravdess", help="manifest, stores and runs")
    p.add_argument("--manifest", type=Path, help="the manifest to write (default WORK/manifest.csv)")
    p.add_argument("--store", type=Path, help="the default streams' store (default WORK/store); other acoustic "
                   "extractors go to STORE-<name>")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}; 'none'")
    p.add_argument("--probes", help="comma list of acoustic extractors to probe (default: every registered one); "
                   "'none'")
    p.add_argument("--mcr-acoustic", default="", help="comma list of other acoustic extractors to train MCR on "
                   "too (their stores, STORE-<name>), e.g. whisper-encoder")
    p.add_argument("--folds", type=int, default=6)
    p.add_argument("--group-by", default="actor")
    p.add_argument("--preset", default="iemocap", help="mcr train --preset")
    p.add_argument("--config", type=Path, default=TRAINING, help="mcr train --config (default: "
                   "benchmarks/ravdess_cv.toml)")
    p.add_argument("--epochs", type=int, help="mcr train --epochs")
    p.add_argument("--seeds", type=int, default=1, help="mcr train --seeds: models per fold, their outputs averaged")
    p.add_argument("--workers", type=int, default=2, help="mcr extract --workers")
    p.add_argument("--language", help="mcr extract --language (e.g. 'none': probes and majority only)")
    p.add_argument("--no-extract", action="store_true", help="use STORE and STORE-<name> as they are: no prepare, "
                   "no extract (the extraction costs their benchmark-extract.json recorded)")
    p.add_argument("--write", action="store_true", help="write docs/benchmarks.md's section and the picture")
    p.add_argument("--doc", type=Path, help=argparse.SUPPRESS)  # tests: another benchmarks document
    p.add_argument("--image", type=Path, default=IMAGE, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    manifest = args.manifest or args.work / "manifest.csv"
    store = args.store or args.work / "store"
    models = [] if args.models == "none" else [m.strip() for m in args.models.split(",") if m.strip()]
    if unknown := [m for m in models if m not in MODELS]:
        p.error(f"--models: unknown {unknown}; known: {', '.join(MODELS)}")
    default_acoustic = DEFAULT_EXTRACTORS["acoustic"]
    probes = available("acoustic") if args.probes is None else \
        [] if args.probes == "none" else [a.strip() for a in args.probes.split(",") if a.strip()]
    mcr_acoustic = [a.strip() for a in args.mcr_acoustic.split(",") if a.strip()]
    acoustic = list(dict.fromkeys([default_acoustic, *probes, *mcr_acoustic]))

    manifest.parent.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    stores = {name: store if name == default_acoustic else Path(f"{store}-{name}") for name in acoustic}
    if args.no_extract:
        costs = {name: recorded_cost(stores[name], name) for name in acoustic}
    else:
        mcr("prepare", "ravdess", str(args.raw), "--split", "actors", "--modality", "audio", "--channel", "speech",
            "--out", str(manifest))
        costs = {name: extract(manifest, stores[name], name, workers=args.workers, language=args.language,
                               seed_store=None if name == default_acoustic else store) for name in acoustic}

    rows, cvs = [], {}
    for key in models:
        name, model_args = MODELS[key]
        cvs[key] = cross_validation(store, args.work / "cv" / key, model_args, args)
        language = DEFAULT_EXTRACTORS["language"]
        streams = {"audio_only": f"acoustic ({default_acoustic})", "language_only": f"language ({language})"}.get(
            key, f"language ({language}), acoustic ({default_acoustic}); visual empty")
        rows.append(row(name, streams, cvs[key], float(cvs[key]["seconds"])))
    for name in mcr_acoustic:
        cvs[f"mcr-{name}"] = cv = cross_validation(stores[name], args.work / "cv" / f"mcr-{name}", [], args)
        rows.append(row(f"MCR, acoustic stream `{name}`", f"language ({DEFAULT_EXTRACTORS['language']}), "
                        f"acoustic ({name}); visual empty", cv, float(cv["seconds"])))
    folds = folds_of(next(iter(cvs.values()))) if cvs else None
    for key, cv in cvs.items():
        if folds_of(cv) != folds:
            raise RuntimeError(f"the cross-validation of {key} tested other groups than the first model's")
    for name in probes:
        data = pooled_stream(str(stores[name]), group_by=args.group_by)
        folds = folds or block_folds(data.groups, args.folds)
        probe = cross_validate(data, folds)
        rows.append(row(f"linear probe of `{name}`", f"acoustic ({name}), pooled", probe, probe["seconds"]))
    data = pooled_stream(str(store), group_by=args.group_by)
    folds = folds or block_folds(data.groups, args.folds)
    majority = cross_validate(data, folds, model="majority")
    rows.append(row("majority class of the training folds", "none", majority, majority["seconds"]))

    markdown = section(args, rows, folds, costs, data, models)
    print(markdown)
    (args.work / "results.json").write_text(json.dumps({"rows": rows, "folds": folds, "extraction": costs},
                                                       indent=1))
    if args.write:
        plot(pictured(rows), args.image)
        write_section("ravdess", markdown, args.doc)
    return 0


def training_text(config: Path) -> str:
    """The training options of a ``--config`` file, as ``key = value`` pairs."""
    from model.presets import read_overrides

    return ", ".join(f"{k}.{name} = {value}" if isinstance(v, dict) else f"{k} = {v}"
                     for k, v in read_overrides(config).items()
                     for name, value in (v.items() if isinstance(v, dict) else [(None, None)]))


def section(args, rows: list[dict], folds: list[list[str]], costs: dict, data, models: list[str]) -> str:
    """The ``ravdess`` section of docs/benchmarks.md; ``data``: the clips (a ``PooledStream``)."""
    from collections import Counter

    counts = ", ".join(f"{name} {n}" for name, n in sorted(Counter(data.labels).items()))
    skipped = [name for key, (name, _) in MODELS.items() if key not in models]
    best = pictured(rows)
    command = " ".join(["python benchmarks/ravdess.py RAVDESS_DIR",
                        *([f"--models {args.models}"] if args.models != ",".join(MODELS) else []),
                        *([f"--probes {args.probes}"] if args.probes else []),
                        *([f"--mcr-acoustic {args.mcr_acoustic}"] if args.mcr_acoustic else []),
                        *([f"--folds {args.folds}"] if args.folds != 6 else []),
                        *([f"--epochs {args.epochs}"] if args.epochs else []),
                        *([f"--seeds {args.seeds}"] if args.seeds > 1 else []),
                        *([f"--config {args.config}"] if args.config != TRAINING else []),
                        *(["--no-extract"] if args.no_extract else []), "--write"])
    extraction = []
    for name, c in costs.items():
        if c.get("videos"):
            extraction.append(f"`{name}`: {c['videos']} clips ({c['media_seconds'] / 60:.1f} min of audio) in "
                              f"{c['wall_seconds'] / 60:.1f} min with {c['workers']} workers, "
                              f"{c['media_seconds'] / c['wall_seconds']:.1f}x real time"
                              + (" (language and visual streams reused: the acoustic stream only)"
                                 if c.get("reused_streams") else " (all three streams)") + f", {c['date']}")
    fold_text = "; ".join(f"{k + 1}: {', '.join(f)}" for k, f in enumerate(folds))
    return "\n".join([
        "## RAVDESS speech: emotions on real media, actor-independent cross-validation",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}.",
        "",
        f"Data: the RAVDESS speech audio (`03-01-*.wav`), {len(data.labels)} clips of {len(set(data.groups))} "
        f"{args.group_by}s, {len(set(data.labels))} emotions ({counts}), prepared with `mcr prepare ravdess "
        "--split actors --modality audio --channel speech` and extracted with `mcr extract` (our streams, not the "
        "benchmarks' features; no "
        "video, so the visual stream is empty). Every clip is tested once, by models that never heard its actor: "
        f"{len(folds)} folds by `{args.group_by}` (test {args.group_by}s {fold_text}). Metrics pooled over the "
        "folds: accuracy, unweighted accuracy (the mean of the per-class recalls) and macro-F1.",
        "",
        "Extraction: " + ("; ".join(extraction) if extraction else "done before this run (not timed here)") + ".",
        "",
        f"Models: `mcr train --data STORE --cv {args.folds} --group-by {args.group_by} --preset {args.preset} "
        f"--config {args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}`"
        + (f" `--epochs {args.epochs}`" if args.epochs else "")
        + (f" `--seeds {args.seeds}` (each fold's {args.seeds} seeds' outputs averaged)" if args.seeds > 1 else "")
        + (f" ({training_text(args.config)})" if args.config else "")
        + " (MulT: `--arch mult`; the single-modality rows: `--ablation audio_only` / `language_only`; "
        "\"MCR, acoustic stream X\": the same command on the store whose acoustic stream is X). "
        "Linear probe: scikit-learn's logistic regression (C = 1, standardised inputs) on each clip's acoustic "
        "frames pooled to mean, std, 10th and 90th percentile per feature, trained on all the other folds. "
        "Training time: the sum over the folds (`cv.json`'s `seconds`; the probes' and the majority's: fitting "
        "only).",
        "",
        *table(rows),
        "",
        *([f"Not run this time (left out of `--models`): {', '.join(skipped)}.", ""] if skipped else []),
        f"Pooled confusion matrix of the best MCR row ({best['name']}, unweighted accuracy "
        f"{best['unweighted_accuracy']:.3f}): ![RAVDESS confusion matrix](images/ravdess-confusion.png)",
        "",
        "Published RAVDESS figures, for context (other features, other models, other protocols):",
        "",
        *[f"- {p}" for p in PUBLISHED],
        "- Speech-only figures in the literature are often from random (speaker-dependent) splits, where a "
        "model has heard every test actor; they are not comparable with the table above and are left out.",
    ])


if __name__ == "__main__":
    sys.exit(main())
