"""Train MCR (or MulT, or an ablation) on a feature store or a benchmark file.

Examples:
  mcr train --data store/ --preset mosi --out runs/mosi
  mcr train --data data/mosi_data_noalign.pkl --preset mosi --out runs/mult --arch mult --seeds 5
  mcr train --data mosi_valid_word_aligned.parquet --preset mosi --config small.toml --out runs/l --ablation language_only
  mcr train --data ravdess-store/ --cv 6 --group-by actor --out runs/ravdess-cv

SOURCE: a store directory (--aligned for its word-aligned view), MulT's or MMSA's pickle (or a folder holding
one), or a word-aligned Parquet table. A source without train/valid splits is cut 3/5, 1/5, 1/5 by video.
Running the same command again resumes from the last checkpoint; a finished run is left as it is.

--cv K --group-by COLUMN: a cross-validation instead of one run (workflows/cross_validation.py): the source's
labelled samples pooled and cut into K folds by the segments' COLUMN (actor, speaker...; video_id for any source),
every sample tested once by a model that never saw its group; RUN/fold-<f>/ per fold, RUN/cv.json for all.
"""
from __future__ import annotations

import argparse
import sys

from pipeline.options import Bound, bound_of
from workflows.pipeline_config import SEEDS
from workflows.train_config import TrainConfig

HELP = "Train MCR (or a baseline) on a store or a benchmark pickle."
FOLDS = Bound(int, 2, 1000)


def _flag(field: str) -> Bound:
    """The range of a training option, as the type of the flag that sets it."""
    return bound_of(TrainConfig, field)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="SOURCE", help="store directory, .pkl or .parquet")
    parser.add_argument("--preset", choices=["mosi", "mosei", "iemocap"], default="mosi",
                        help="Table 1 settings (model, batch size, learning rate, epochs)")
    parser.add_argument("--config", metavar="FILE", help="JSON/TOML overrides: batch_size, lr, epochs, "
                        "a [model] table of MCRConfig fields, any training option (see workflows/train.py)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory (resumed when it exists)")
    parser.add_argument("--seeds", type=SEEDS, default=1, help="train this many seeds (seed, seed+1, ...) and "
                        "report mean ± std; with --cv, that many models per fold, their outputs averaged")
    parser.add_argument("--seed", type=_flag("seed"), help="first seed (default 0)")
    parser.add_argument("--epochs", type=_flag("epochs"), help="override the preset's epochs")
    parser.add_argument("--batch-size", type=_flag("batch_size"), help="override the preset's batch size")
    parser.add_argument("--lr", type=_flag("lr"), help="override the preset's learning rate")
    parser.add_argument("--schedule", choices=["default", "paper"],
                        help="default: early stopping and LR-on-plateau; paper: exactly Table 1's epochs, constant "
                        "learning rate, no early stop")
    parser.add_argument("--modality-dropout", type=_flag("modality_dropout"), metavar="P",
                        help="per training sample and modality, mask the whole modality out with probability P "
                        "(at least one always kept; never at evaluation) so that missing streams are seen in "
                        "training; default 0 (off, as the paper)")
    parser.add_argument("--arch", choices=["mcr", "mult"], help="model: MCR (default) or the MulT baseline")
    parser.add_argument("--ablation", metavar="NAME", help="a row of the paper's Table 5, e.g. language_only")
    parser.add_argument("--aligned", action="store_true", default=None,
                        help="word-aligned view of a store / the aligned pickle of a folder")
    parser.add_argument("--max-len", type=_flag("max_len"), help="longest sequence kept per modality (store, Parquet)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: CUDA when available")
    parser.add_argument("--cpu-threads", type=_flag("cpu_threads"), help="torch CPU threads (default: the cores free when "
                        "training starts)")
    parser.add_argument("--stream-rate", type=_flag("stream_rate"), metavar="HZ",
                        help="highest steps per second of a store's streams fed to the model; faster ones are "
                        "mean-pooled (default 25: the 100 Hz acoustic stream by 4); 0 keeps every step")
    parser.add_argument("--select-on", choices=["auto", "loss", "unweighted_accuracy"],
                        help="validation figure that picks the best epoch and stops early (default auto: the "
                        "unweighted accuracy for a classification, the loss otherwise)")
    parser.add_argument("--cv", type=FOLDS, metavar="K", help="K-fold cross-validation by --group-by instead of one "
                        "run; writes RUN/cv.json")
    parser.add_argument("--group-by", metavar="COLUMN", default="video_id",
                        help="with --cv: the segments' column whose groups never share a fold (e.g. actor, "
                        "speaker; default video_id)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="load pickles with the unrestricted pickle module (only files you trust)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pipeline.sources import training_splits
    from workflows.runs import format_metrics
    from workflows.train import train_seeds
    from workflows.train_config import configure, fit_model_to_data

    model_cfg, tcfg = configure(args.preset, args.config, seed=args.seed, epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, schedule=args.schedule, aligned=args.aligned,
                                max_len=args.max_len, device=args.device, cpu_threads=args.cpu_threads,
                                modality_dropout=args.modality_dropout, select_on=args.select_on,
                                stream_rate=args.stream_rate)
    if args.arch:
        model_cfg = model_cfg.replace(arch=args.arch)
    if args.ablation:
        model_cfg = model_cfg.with_ablation(args.ablation)
    if args.cv is not None:
        return _cross_validate(args, model_cfg, tcfg)
    splits, data_info = training_splits(args.data, aligned=tcfg.aligned, max_len=tcfg.max_len,
                                        trust_pickle=args.trust_pickle)
    model_cfg = fit_model_to_data(model_cfg, splits["train"], rates=data_info["rates"], stream_rate=tcfg.stream_rate)
    print(f"training {model_cfg.arch} on {args.data}: " + ", ".join(f"{k} {v}" for k, v in
                                                                     data_info["splits"].items()), file=sys.stderr)
    result = train_seeds(splits, model_cfg, tcfg, args.out, n_seeds=args.seeds, data_info=data_info,
                         progress=not args.no_progress)
    print(format_metrics(result))
    return 0


def _cross_validate(args: argparse.Namespace, model_cfg, tcfg) -> int:
    from pathlib import Path

    from pipeline.store_source import store_description
    from workflows.cross_validation import cross_validate, format_cv, labelled_samples
    from workflows.train_config import fit_model_to_data

    whole, groups = labelled_samples(args.data, args.group_by, aligned=tcfg.aligned, max_len=tcfg.max_len,
                                     trust_pickle=args.trust_pickle)
    store = store_description(args.data if Path(args.data).is_dir() else None)
    model_cfg = fit_model_to_data(model_cfg, whole, rates=store["rates"], stream_rate=tcfg.stream_rate)
    data_info = {"source": str(Path(args.data).resolve()), "dims": list(whole.dims), "classes": whole.classes,
                 **store}
    print(f"{args.cv}-fold cross-validation of {model_cfg.arch} on {args.data}: {len(whole)} samples, "
          f"{len(set(groups.tolist()))} groups by {args.group_by}", file=sys.stderr)
    summary = cross_validate(whole, groups, model_cfg, tcfg, args.out, k=args.cv, group_by=args.group_by,
                             seeds=args.seeds, data_info=data_info, progress=not args.no_progress)
    print(format_cv(summary))
    return 0
