"""Train MCR (or MulT, or an ablation) on a feature store or a benchmark file.

Examples:
  mcr train --data store/ --preset mosi --out runs/mosi
  mcr train --data data/mosi_data_noalign.pkl --preset mosi --out runs/mult --arch mult --seeds 5
  mcr train --data mosi_valid_word_aligned.parquet --preset mosi --config small.toml --out runs/l --ablation language_only

SOURCE: a store directory (--aligned for its word-aligned view), MulT's or MMSA's pickle (or a folder holding
one), or a word-aligned Parquet table. A source without train/valid splits is cut 3/5, 1/5, 1/5 by video.
Running the same command again resumes from the last checkpoint; a finished run is left as it is.
"""
from __future__ import annotations

import argparse
import sys

HELP = "Train MCR (or a baseline) on a store or a benchmark pickle."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="SOURCE", help="store directory, .pkl or .parquet")
    parser.add_argument("--preset", choices=["mosi", "mosei", "iemocap"], default="mosi",
                        help="Table 1 settings (model, batch size, learning rate, epochs)")
    parser.add_argument("--config", metavar="FILE", help="JSON/TOML overrides: batch_size, lr, epochs, "
                        "a [model] table of MCRConfig fields, any training option (see workflows/train.py)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory (resumed when it exists)")
    parser.add_argument("--seeds", type=int, default=1, help="train this many seeds (seed, seed+1, ...) and "
                        "report mean ± std")
    parser.add_argument("--seed", type=int, help="first seed (default 0)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--lr", type=float, help="override the preset's learning rate")
    parser.add_argument("--schedule", choices=["default", "paper"],
                        help="default: early stopping and LR-on-plateau; paper: exactly Table 1's epochs, constant "
                        "learning rate, no early stop")
    parser.add_argument("--modality-dropout", type=float, metavar="P",
                        help="per training sample and modality, mask the whole modality out with probability P "
                        "(at least one always kept; never at evaluation) so that missing streams are seen in "
                        "training; default 0 (off, as the paper)")
    parser.add_argument("--arch", choices=["mcr", "mult"], help="model: MCR (default) or the MulT baseline")
    parser.add_argument("--ablation", metavar="NAME", help="a row of the paper's Table 5, e.g. language_only")
    parser.add_argument("--aligned", action="store_true", default=None,
                        help="word-aligned view of a store / the aligned pickle of a folder")
    parser.add_argument("--max-len", type=int, help="longest sequence kept per modality (store, Parquet)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: CUDA when available")
    parser.add_argument("--cpu-threads", type=int, help="torch CPU threads (default: torch's choice)")
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
                                modality_dropout=args.modality_dropout)
    if args.arch:
        model_cfg = model_cfg.replace(arch=args.arch)
    if args.ablation:
        model_cfg = model_cfg.with_ablation(args.ablation)
    splits, data_info = training_splits(args.data, aligned=tcfg.aligned, max_len=tcfg.max_len,
                                        trust_pickle=args.trust_pickle)
    model_cfg = fit_model_to_data(model_cfg, splits["train"])
    print(f"training {model_cfg.arch} on {args.data}: " + ", ".join(f"{k} {v}" for k, v in
                                                                     data_info["splits"].items()), file=sys.stderr)
    result = train_seeds(splits, model_cfg, tcfg, args.out, n_seeds=args.seeds, data_info=data_info,
                         progress=not args.no_progress)
    print(format_metrics(result))
    return 0
