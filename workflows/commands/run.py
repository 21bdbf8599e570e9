"""Rerun the whole pipeline (extract -> dataset -> train -> evaluate -> predict -> report) from one TOML config.

Stages whose inputs have not changed since the last run are skipped; a killed run resumes at the stage it was in.
The config format is documented in workflows/pipeline.py and README.md.

Example:
  mcr run pipeline.toml
  mcr run pipeline.toml --force      # recompute every stage (extraction still skips complete videos)
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="pipeline config (TOML)")
    p.add_argument("--force", action="store_true", help="rerun every stage even when it is up to date")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="use an existing Dask cluster")


def run(args: argparse.Namespace) -> int:
    from workflows.cluster import open_client
    from workflows.pipeline import run_pipeline
    from workflows.pipeline_config import load_config

    config = load_config(args.config)  # every section checked before anything starts
    with open_client(args.scheduler or config.extract.scheduler, config.extract.workers) as client:
        result = run_pipeline(config, force=args.force, client=client)
    print("stages: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    return 0
