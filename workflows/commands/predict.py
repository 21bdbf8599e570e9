"""Annotate new videos with emotions: one row per segment (times, transcript, streams present, face, predictions).

INPUT is a video, a folder of videos or a manifest CSV. Videos are first extracted into a feature store (reused on
the next run), then cut into segments: the manifest's, else --window seconds, else utterances (voice activity
detection with whisper's words: every stretch of speech gets a row, with words or without; one longer than
--max-utterance is split at a pause) and stretches with a face on screen but no speech. The columns and the
table's metadata are described in docs/predictions.md. The share of detected speech that got a row is printed to
stderr, and so is a warning when the model was trained on placeholder labels. A file that fails is a row with
``status`` failed and its ``reason`` (exit code 1); the arguments are checked before any extraction.

Examples:
  mcr predict interviews/ --model runs/mosi --out annotations.parquet --vtt subtitles/
  mcr predict talk.mp4 --model runs/mosi --out talk.csv --window 10 --srt subtitles/ --json transcripts/
"""
from __future__ import annotations

import argparse
import sys

from pipeline.options import Bound
from workflows.cluster import WORKERS
from workflows.pipeline_config import WINDOW


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a video, a folder of videos, or a manifest CSV")
    p.add_argument("--model", required=True, metavar="RUN", help="a trained run directory (mcr train --out)")
    p.add_argument("--out", required=True, help="output table: .parquet or .csv")
    p.add_argument("--store", default=None, help="feature store to extract into and reuse (default: OUT.store)")
    p.add_argument("--window", type=WINDOW, default=None, metavar="SECONDS",
                   help="cut videos into fixed windows instead of whisper's utterances")
    p.add_argument("--max-utterance", type=Bound(float, 0.5, 3600), default=8.0, metavar="SECONDS",
                   help="split longer utterances at a pause (default: %(default)s)")
    p.add_argument("--min-pause", type=Bound(float, 0, 60, low_open=True), default=0.5, metavar="SECONDS",
                   help="a pause this long between two words starts a new row (default: %(default)s)")
    p.add_argument("--vtt", default=None, metavar="DIR", help="also write one WebVTT subtitle file per video")
    p.add_argument("--srt", default=None, metavar="DIR", help="also write one SubRip subtitle file per video")
    p.add_argument("--json", default=None, metavar="DIR",
                   help="also write one JSON file per video (whisper's JSON shape, with the predictions)")
    p.add_argument("--workers", type=WORKERS, default=None, help="local Dask workers (default: one per core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="use an existing Dask cluster")
    p.add_argument("--visual", default=None, help="visual backend (default: mediapipe)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def shown_rows(frame, n: int = 20):
    """The first ``n`` rows as printed: times, streams, the predictions, each class's probability (``p_<name>``,
    e.g. the 8 emotions of a RAVDESS model, rounded to 0.01) and the words."""
    shown = ["video_id", "start", "end", "streams", *[c for c in frame.columns if c.startswith("predicted_")],
             *[c for c in frame.columns if c.startswith("p_")], "transcript"]
    rows = frame[[c for c in shown if c in frame.columns]].head(n)
    return rows.round({c: 2 for c in rows.columns if c.startswith("p_")})


def format_rows(frame, n: int = 20) -> str:
    """The rows printed after a prediction, headed ``first 20 of 44 rows:`` when some are left out."""
    shown = shown_rows(frame, n)
    table = shown.to_string(index=False, max_colwidth=40)
    return f"first {len(shown)} of {len(frame)} rows:\n{table}" if len(shown) < len(frame) else table


def run(args: argparse.Namespace) -> int:
    from workflows.cluster import absolute, open_client
    from workflows.predict import check_table_path, predict_videos, sources_of
    from workflows.runs import load_run

    check_table_path(args.out)  # every argument is checked before a cluster starts, each with a one-line error
    sources_of(args.input)
    trained = load_run(args.model)
    store = absolute(args.store) if args.store else None
    with open_client(args.scheduler, args.workers) as client:
        frame = predict_videos(args.input, trained, args.out, store=store, window=args.window, vtt_dir=args.vtt,
                               srt_dir=args.srt, json_dir=args.json, max_len=args.max_utterance,
                               min_pause=args.min_pause, client=client,
                               visual=args.visual, progress=not args.no_progress)
    failures = frame.attrs.get("failures") or []
    ok = frame[frame["status"] == "ok"]
    print(f"wrote {len(ok)} segments of {ok['video_id'].nunique()} videos to {args.out}"
          + (f"; {len(failures)} failed (a row each, status 'failed')" if failures else ""))
    if len(ok):
        print(format_rows(ok))
    for f in failures:
        print(f"failed: {f.get('path')} [{f.get('stage')}] {f.get('message')}", file=sys.stderr)
    return 1 if failures else 0
