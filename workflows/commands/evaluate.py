"""Evaluate a trained run on a split of a data source (the best validation epoch's weights of every seed).

Example:
  mcr evaluate runs/mosi --data data/mosi_data_noalign.pkl --split test

Writes RUN/eval-<split>.json and prints the metrics (mean ± std over seeds for a multi-seed run). A classification
reports acc, weighted f1, unweighted_accuracy (macro recall) and macro_f1 (IEMOCAP: per emotion and their means);
its confusion matrix names the run's classes.
"""
from __future__ import annotations

import argparse

HELP = "Evaluate a trained run on a split."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run directory written by `mcr train`")
    parser.add_argument("--data", required=True, metavar="SOURCE", help="store directory, .pkl or .parquet")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="load pickles with the unrestricted pickle module (only files you trust)")


def run(args: argparse.Namespace) -> int:
    from workflows.runs import format_metrics
    from workflows.evaluate import evaluate_run

    result = evaluate_run(args.run, args.data, split=args.split, trust_pickle=args.trust_pickle)
    table = {args.split: result["summary"] if result["summary"] else next(iter(result["seeds"].values()))}
    print(f"{result['n']} samples, {len(result['seeds'])} seed(s)")
    print(format_metrics(table))
    return 0
