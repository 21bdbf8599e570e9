"""Plots and a one-page HTML report of a trained run: curves, confusion matrix, attention of one sample, metrics.

Example:
  mcr report runs/mosi                      # the sample comes from the data the run was trained on
  mcr report runs/mosi --data other.pkl --split valid --sample 3
  mcr report runs/mosi --viewer viewer/     # link the pages of `mcr view ... --out viewer/`

Writes RUN/report/index.html and its PNGs (or --out DIR). Class names label the confusion matrix and the per-class
table; with a feature store as the data, the attention maps' axes show the sample's words and seconds. The page links
the predictions viewer of --viewer, or RUN/viewer when that exists.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.options import bound_of
from workflows.pipeline_config import ReportSection

HELP = "Plots and a one-page HTML report of a run."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run directory written by `mcr train`")
    parser.add_argument("--data", metavar="SOURCE", help="data for the attention sample (default: the run's own)")
    parser.add_argument("--split", default="test", help="split the sample comes from (default: test)")
    parser.add_argument("--sample", type=bound_of(ReportSection, "sample"), default=None,
                        help="index of the sample in the split (default: the first with words and every stream)")
    parser.add_argument("--layer", type=bound_of(ReportSection, "layer"), help="reinforcement layer of the heatmaps (default: the last)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RUN/report)")
    parser.add_argument("--viewer", metavar="DIR",
                        help="the folder written by `mcr view` to link (default: ../viewer beside the report, if any)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="load pickles with the unrestricted pickle module (only files you trust)")


def run(args: argparse.Namespace) -> int:
    from workflows.evaluate import split_of
    from workflows.report import write_report
    from workflows.runs import load_run

    if args.viewer and not (Path(args.viewer) / "index.html").is_file() and not Path(args.viewer).is_file():
        raise FileNotFoundError(f"{args.viewer}: [report] no viewer there (no index.html); write it with "
                                f"`mcr view PREDICTIONS --out {args.viewer}`")
    trained = load_run(args.run)
    source = args.data or trained.data.get("source")
    split = None
    if source and Path(source).exists():
        split = split_of(source, args.split, trained, trust_pickle=args.trust_pickle)
    else:
        print(f"no data at {source!r}: the report has no attention plots (pass --data)", file=sys.stderr)
    page = write_report(args.run, split=split, sample=args.sample, layer=args.layer, out=args.out,
                        source=source, viewer=args.viewer)
    print(page)
    return 0
