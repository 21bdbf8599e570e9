"""Annotate new videos with emotions: one row per segment (video_id, segment_id, start, end, transcript, prediction).

INPUT is a video, a folder of videos or a manifest CSV. Videos are first extracted into a feature store (reused on
the next run), then cut into segments: the manifest's, else whisper's utterances, else --window seconds.

Examples:
  mcr predict interviews/ --model runs/mosi --out annotations.parquet --vtt subtitles/
  mcr predict talk.mp4 --model runs/mosi --out talk.csv --window 10
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a video, a folder of videos, or a manifest CSV")
    p.add_argument("--model", required=True, metavar="RUN", help="a trained run directory (mcr train --out)")
    p.add_argument("--out", required=True, help="output table: .parquet or .csv")
    p.add_argument("--store", default=None, help="feature store to extract into and reuse (default: OUT.store)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="cut videos into fixed windows instead of whisper's utterances")
    p.add_argument("--vtt", default=None, metavar="DIR", help="also write one WebVTT subtitle file per video")
    p.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="use an existing Dask cluster")
    p.add_argument("--visual", default=None, help="visual backend (default: mediapipe)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from workflows.cluster import absolute, open_client
    from workflows.predict import predict_videos
    from workflows.runs import load_run

    trained = load_run(args.model)  # a damaged model fails now, before a cluster starts
    store = absolute(args.store) if args.store else None
    with open_client(args.scheduler, args.workers) as client:
        frame = predict_videos(args.input, trained, args.out, store=store, window=args.window, vtt_dir=args.vtt,
                               client=client, visual=args.visual, progress=not args.no_progress)
    print(f"wrote {len(frame)} segments of {frame['video_id'].nunique()} videos to {args.out}")
    print(frame.drop(columns=["segment_id"]).head(20).to_string(index=False, max_colwidth=40))
    failures = frame.attrs.get("failures") or []
    for f in failures:
        print(f"failed: {f.get('path')} [{f.get('stage')}] {f.get('message')}", file=sys.stderr)
    return 1 if failures else 0
