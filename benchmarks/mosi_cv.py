"""5-fold cross-validation on the 229 real MOSI segments: MCR, MulT and a language-only MCR side by side.

    python benchmarks/mosi_cv.py [--epochs 30] [--seeds 3] [--out runs/mosi_cv] [--write]
    python benchmarks/mosi_cv.py --drop-at-test visual [--modality-dropout 0.3]   # the same, one stream removed
    python benchmarks/mosi_cv.py --compare-dropout 0.3 [--write]    # missing streams: MCR without / with dropout

Data: ``../shared/data/mosi/mosi_valid_word_aligned.parquet`` (the CMU-MOSI validation split, word-aligned GloVe /
Facet / COVAREP). Folds are by video (10 videos, so no speaker is in two folds): fold k is the test set, fold k+1
the validation set (model selection, early stopping, LR schedule), the other three the training set. Each model
trains with each seed on each fold; the table gives mean ± std over the folds x seeds runs of the test metrics, and
with ``--write`` also goes into its section of docs/benchmarks.md. Runs are kept under ``--out`` and resumed when the
script is rerun.

Missing streams: ``--drop-at-test M`` removes modality M (language, visual or acoustic) from every test segment (its
mask all False, its features 0: what the model sees for speech with no face in view, or a face with no speech);
``--modality-dropout P`` trains with the trainer's modality dropout (``TrainConfig.modality_dropout``).
``--compare-dropout P`` trains MCR without and with modality dropout P on the same folds and seeds (same
initialisation and shuffling; only the dropout differs) and tests each on full inputs and with each single stream
removed; its table goes into the ``mosi_cv_missing_streams`` part of the MOSI section.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_section  # noqa: E402
from pipeline import metrics as M  # noqa: E402
from pipeline.arrays import MODALITIES, group_folds, normalize  # noqa: E402
from pipeline.sources import load_source  # noqa: E402
from workflows.inference import predict_arrays  # noqa: E402
from workflows.runs import load_run  # noqa: E402
from workflows.train import train_run  # noqa: E402
from workflows.train_config import configure, fit_model_to_data  # noqa: E402

DATA = ROOT / ".." / "shared" / "data" / "mosi" / "mosi_valid_word_aligned.parquet"
MODELS = {"MCR": {}, "MulT": {"arch": "mult"}, "Language-only MCR": {"modalities": ["l"]}}
COLUMNS = (("MAE", "mae", 3), ("Corr", "corr", 3), ("Acc2", "acc2_non0", 1), ("F1", "f1_non0", 1), ("F1 (MulT)", "f1_non0_mult", 1),
           ("Acc7", "acc7", 1))
DROP_COLUMNS = COLUMNS[:4]  # MAE, Corr, Acc2, F1
CONDITIONS = ("full", *MODALITIES)  # full inputs, then each single stream removed at test time


def fold_splits(whole, n_folds: int) -> list[dict]:
    """Per fold: train (3 folds), valid (the next fold) and test (this fold), never splitting a video."""
    folds = group_folds(whole.video_ids, n_folds)
    out = []
    for k in range(n_folds):
        valid = (k + 1) % n_folds
        train = np.concatenate([folds[j] for j in range(n_folds) if j not in (k, valid)])
        out.append({"train": whole.subset(train), "valid": whole.subset(folds[valid]), "test": whole.subset(folds[k])})
    return out


def drop_stream(split, modality: str):
    """``split`` with ``modality`` removed from every sample: its mask all False and its features 0."""
    x, mask = getattr(split, modality), getattr(split, f"{modality}_mask")
    return dataclasses.replace(split, **{modality: np.zeros_like(x), f"{modality}_mask": np.zeros_like(mask)})


def test_metrics(run_dir: Path, test, drop: str | None) -> dict:
    """Metrics of the run's best validation epoch on ``test``, with the stream ``drop`` removed (None, "full": none).

    The stream is removed after the run's normalisation, so its features reach the model as zeros.
    """
    trained = load_run(run_dir)
    split = normalize(test, trained.normalizer) if trained.normalizer is not None else test
    if drop and drop != "full":
        split = drop_stream(split, drop)
    return M.compute_metrics("regression", predict_arrays(trained.model, split), split.labels)


def train_seconds(run_dir: Path) -> float:
    """The run's training time, summed over its epochs (history.json), so a resumed or finished run counts fully."""
    return float(sum(h["seconds"] for h in json.loads((run_dir / "history.json").read_text())))


def _run_name(name: str, dropout: float) -> str:
    return name.replace(" ", "_").lower() + (f"_md{dropout:g}" if dropout else "")


def mean_std(values: list[float], scale: float, digits: int) -> str:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], float) * scale
    if not len(v):
        return "n/a"
    note = "" if len(v) == len(values) else f" ({len(v)}/{len(values)})"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}{note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=8, help="early stopping patience (epochs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--drop-at-test", choices=MODALITIES, metavar="MODALITY",
                        help="remove this stream (language, visual or acoustic) from every test segment")
    parser.add_argument("--modality-dropout", type=float, default=0.0, metavar="P",
                        help="train with modality dropout P (TrainConfig.modality_dropout; default 0, off)")
    parser.add_argument("--compare-dropout", type=float, metavar="P",
                        help="instead: MCR trained without and with modality dropout P, each tested on full inputs "
                        "and with each single stream removed")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mosi_cv")
    parser.add_argument("--write", action="store_true",
                        help="also write the results into docs/benchmarks.md (without it they are only printed)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data}: not found (the shared MOSI data); nothing to do", file=sys.stderr)
        return 0
    if args.compare_dropout is not None and (args.drop_at_test or args.modality_dropout):
        parser.error("--compare-dropout trains both variants and tests every condition itself; "
                     "leave out --drop-at-test and --modality-dropout")

    whole = load_source(args.data)["all"]
    folds = fold_splits(whole, args.folds)
    base_cfg, tcfg = configure("mosi", {"lr_patience": 3}, epochs=args.epochs, batch_size=args.batch_size,
                               early_stop_patience=args.patience, cpu_threads=args.threads)
    if args.compare_dropout is not None:
        return compare_dropout(args, folds, base_cfg, tcfg)
    tcfg = dataclasses.replace(tcfg, modality_dropout=args.modality_dropout)
    results: dict[str, list[dict]] = {name: [] for name in MODELS}
    seconds: dict[str, float] = {name: 0.0 for name in MODELS}
    epochs_run: dict[str, list[int]] = {name: [] for name in MODELS}
    mean_baseline = []
    for k, splits in enumerate(folds):
        train_mean = float(splits["train"].labels.mean())
        mean_baseline.append(M.sentiment_metrics(np.full(len(splits["test"]), train_mean), splits["test"].labels))
        for name, changes in MODELS.items():
            model_cfg = fit_model_to_data(base_cfg.replace(**changes), splits["train"])
            for seed in range(args.seeds):
                run_dir = args.out / _run_name(name, args.modality_dropout) / f"fold-{k}" / f"seed-{seed}"
                started = time.time()
                result = train_run(splits, model_cfg, dataclasses.replace(tcfg, seed=seed), run_dir, progress=False,
                                   log=lambda s: None)
                seconds[name] += train_seconds(run_dir)
                test = test_metrics(run_dir, splits["test"], args.drop_at_test) if args.drop_at_test \
                    else result["test"]
                results[name].append(test)
                epochs_run[name].append(result["epochs_run"])
                print(f"fold {k} {name} seed {seed}: test MAE {test['mae']:.3f} corr "
                      f"{test['corr']:.3f} ({result['epochs_run']} epochs, {time.time() - started:.0f} s)",
                      flush=True)

    header = "| Model | " + " | ".join(c for c, _, _ in COLUMNS) + " | epochs run | train time |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]
    for name in MODELS:
        cells = [mean_std([r[key] for r in results[name]], 1 if digits == 3 else 100, digits)
                 for _, key, digits in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean(epochs_run[name]):.1f} | "
                     f"{seconds[name] / 60:.1f} min |")
    cells = [mean_std([r[key] for r in mean_baseline], 1 if digits == 3 else 100, digits) for _, key, digits in COLUMNS]
    lines.append("| Predict the training mean | " + " | ".join(cells) + " | – | – |")
    sizes = [f"{len(s['train'])}/{len(s['valid'])}/{len(s['test'])}" for s in folds]
    variant = "".join([f" --drop-at-test {args.drop_at_test}" if args.drop_at_test else "",
                       f" --modality-dropout {args.modality_dropout:g}" if args.modality_dropout else ""])
    markdown = "\n".join([
        "## MOSI 5-fold cross-validation (229 real segments)",
        "",
        f"Command: `python benchmarks/mosi_cv.py --epochs {args.epochs} --seeds {args.seeds} --folds {args.folds} "
        f"--batch-size {args.batch_size} --patience {args.patience} --threads {args.threads}{variant} --write`",
        "",
        f"Machine: {machine()}.",
        "",
        "Data: `../shared/data/mosi/mosi_valid_word_aligned.parquet`, the 229 segments of CMU-MOSI's standard "
        "validation split (10 videos), word-aligned GloVe 300 / Facet 47 / COVAREP 74. Folds by video; per fold "
        f"train/valid/test sizes {', '.join(sizes)}. Each fold tests on its videos, selects the model on the next "
        "fold's (validation loss = L1) and trains on the other three.",
        "",
        f"Training: the `mosi` preset of Table 1 (d=40, 10 heads, 3 reinforcement layers, lr 1e-3) but batch size "
        f"{args.batch_size} and at most {args.epochs} epochs with early stopping after {args.patience} epochs "
        "without validation improvement (ReduceLROnPlateau patience 3), instead of the paper's 120 epochs: "
        f"{args.folds} folds x {args.seeds} seeds x 3 models on ~140 training segments must fit a shared 2-core "
        "CPU. MulT: the baseline of the same package (5 crossmodal layers); language-only: MCR with the paper's "
        "\"Language Only\" ablation (`modalities=(\"l\",)`)."
        + (f" Modality dropout {args.modality_dropout:g} in training." if args.modality_dropout else "")
        + (f" **The {args.drop_at_test} stream is removed from every test segment** (mask all False)."
           if args.drop_at_test else ""),
        "",
        f"Test metrics, mean ± std over the {args.folds * args.seeds} fold x seed runs; Acc2/F1 leave zero labels "
        "out (the paper's non-0 convention), Acc7 rounds half to even. With ~46 test segments per fold and ~140 "
        "to train on, these numbers are far from the paper's (trained on 1284 segments) and their spread is large.",
        "",
        *lines,
    ])
    (args.out).mkdir(parents=True, exist_ok=True)
    suffix = variant.replace(" --", "-").replace(" ", "-")
    (args.out / f"results{suffix}.json").write_text(json.dumps(M.jsonable(
        {"results": results, "mean_baseline": mean_baseline, "seconds": seconds, "epochs_run": epochs_run}), indent=1))
    print(markdown)
    if args.write:
        if variant:
            print("--write: the MOSI section holds the full-input run only; this variant was printed, not written",
                  file=sys.stderr)
        else:
            write_section("mosi_cv", markdown)
    return 0

def compare_dropout(args, folds, base_cfg, tcfg) -> int:
    """MCR without and with modality dropout, same folds and seeds, each tested under every condition."""
    p = args.compare_dropout
    variants = {"none": 0.0, f"P = {p:g}": p}
    results = {v: {c: [] for c in CONDITIONS} for v in variants}
    seconds = {v: 0.0 for v in variants}
    epochs_run: dict[str, list[int]] = {v: [] for v in variants}
    mean_baseline = []
    for k, splits in enumerate(folds):
        train_mean = float(splits["train"].labels.mean())
        mean_baseline.append(M.sentiment_metrics(np.full(len(splits["test"]), train_mean), splits["test"].labels))
        model_cfg = fit_model_to_data(base_cfg, splits["train"])
        for seed in range(args.seeds):
            for label, dropout in variants.items():
                run_dir = args.out / _run_name("MCR", dropout) / f"fold-{k}" / f"seed-{seed}"
                started = time.time()
                result = train_run(splits, model_cfg, dataclasses.replace(tcfg, seed=seed, modality_dropout=dropout),
                                   run_dir, progress=False, log=lambda s: None)
                seconds[label] += train_seconds(run_dir)
                epochs_run[label].append(result["epochs_run"])
                for c in CONDITIONS:
                    results[label][c].append(test_metrics(run_dir, splits["test"], c))
                full = results[label]["full"][-1]["mae"]
                assert abs(full - result["test"]["mae"]) < 1e-4, (full, result["test"]["mae"])  # same evaluation
                print(f"fold {k} seed {seed} dropout {label}: test MAE " + ", ".join(
                    f"{c} {results[label][c][-1]['mae']:.3f}" for c in CONDITIONS)
                    + f" ({result['epochs_run']} epochs, {time.time() - started:.0f} s)", flush=True)

    n = args.folds * args.seeds
    header = ("| Test input | Modality dropout | " + " | ".join(c for c, _, _ in DROP_COLUMNS)
              + " | Δ MAE (paired) | s.e. over folds | folds with lower MAE | Δ Corr (paired) |")
    lines = [header, "|" + "---|" * (len(DROP_COLUMNS) + 6)]
    base, drop_label = list(variants)
    verdicts = []
    for c in CONDITIONS:
        name = "full" if c == "full" else f"no {c}"
        for label in variants:
            rows = results[label][c]
            cells = [mean_std([r[key] for r in rows], 1 if digits == 3 else 100, digits)
                     for _, key, digits in DROP_COLUMNS]
            extra = ["", "", "", ""]
            if label == drop_label:
                d_mae = np.array([a["mae"] - b["mae"] for a, b in zip(rows, results[base][c])])
                d_corr = [a["corr"] - b["corr"] if a["corr"] is not None and b["corr"] is not None else math.nan
                          for a, b in zip(rows, results[base][c])]
                by_fold = d_mae.reshape(args.folds, args.seeds).mean(1)  # the seeds of a fold share its test set
                se = by_fold.std(ddof=1) / math.sqrt(args.folds) if args.folds > 1 else math.nan
                extra = [mean_std(list(d_mae), 1, 3), f"{se:.3f}", f"{int((by_fold < 0).sum())}/{args.folds}",
                         mean_std(d_corr, 1, 3)]
                verdicts.append(f"{name}: Δ MAE {d_mae.mean():+.3f} = "
                                f"{d_mae.mean() / se if se else math.nan:+.1f} s.e."
                                + (" (beyond 2 s.e.)" if se and abs(d_mae.mean()) > 2 * se else " (within 2 s.e.)"))
            lines.append(f"| {name} | {label} | " + " | ".join(cells + extra) + " |")
    cells = [mean_std([r[key] for r in mean_baseline], 1 if digits == 3 else 100, digits)
             for _, key, digits in DROP_COLUMNS]
    lines.append("| any | predict the training mean | " + " | ".join(cells) + " | | | | |")
    timing = "; ".join(f"dropout {label}: {np.mean(epochs_run[label]):.1f} epochs run on average, "
                       f"{seconds[label] / 60:.1f} min of training in all" for label in variants)
    markdown = "\n".join([
        "### Missing streams: MCR trained without and with modality dropout",
        "",
        f"Command: `python benchmarks/mosi_cv.py --compare-dropout {p:g} --epochs {args.epochs} --seeds {args.seeds} "
        f"--folds {args.folds} --batch-size {args.batch_size} --patience {args.patience} --threads {args.threads} "
        "--write`",
        "",
        f"Machine: {machine()}; `nproc` {len(os.sched_getaffinity(0))}, shared with other jobs.",
        "",
        f"The folds, data and training of the table above (MCR only; same epochs, early stopping and seeds), once with "
        f"`modality_dropout = 0` (the paper's setting) and once with `{p:g}`: each training sample loses each "
        "modality with that probability (mask all False, features 0; one modality always kept; "
        f"realised rate {p - p ** 3 / 3:.3f} per modality). Both variants of a (fold, seed) pair start from the same "
        "initialisation and shuffling; model selection and early stopping use the full-input validation fold. "
        "Each trained model is then tested on its full test fold and with each single stream removed from every "
        "test segment (mask all False: what the model gets for speech with no face in view, a face with no "
        "speech, or a silent clip).",
        "",
        f"Metrics: mean ± std over the {n} fold x seed runs (Acc2/F1 on non-zero labels). Δ: the dropout model "
        f"minus the one without, per (fold, seed) pair, mean ± std over the {n} pairs (negative Δ MAE and positive "
        f"Δ Corr favour dropout). The {args.seeds} seeds of a fold share its test segments, so the standard error of "
        f"the mean Δ MAE is taken over the {args.folds} fold means (std / √{args.folds}), not over the {n} pairs. "
        f"{timing}.",
        "",
        *lines,
        "",
        "Mean Δ MAE in standard errors: " + "; ".join(verdicts) + ".",
    ])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"results-compare-dropout-{p:g}.json").write_text(json.dumps(M.jsonable(
        {"results": results, "mean_baseline": mean_baseline, "seconds": seconds, "epochs_run": epochs_run}), indent=1))
    print(markdown)
    if args.write:
        write_section("mosi_cv_missing_streams", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
