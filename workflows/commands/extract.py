"""Extract a folder or a manifest of videos into a Parquet feature store, with Dask.

INPUT is a folder (video and audio files are found recursively; every other file is listed, with the reason it
was passed over) or a manifest CSV with a ``path`` column and optional
``video_id``, ``start``, ``end`` (a segment inside the video, seconds), ``split`` and label columns.

A rerun skips the videos already complete for the same source hash and extractor configs (a file whose size and
modification time are unchanged is not hashed again); a changed config recomputes only its modality. Videos longer
than 1.5 x --chunk-seconds are cut in silences into chunks that run on every worker, and a killed run redoes only
the unfinished chunks. Bad videos are recorded in videos.parquet and listed at the end (exit code 1). A missing track
(an audio-only file has no video) is a one-line warning for the first 3 files and a count in the summary.

Examples:
  mcr extract videos/ --store store/
  mcr extract corpus.csv --store store/ --workers 4 --visual pyfeat
  mcr extract corpus.csv --store /shared/store --scheduler tcp://10.0.0.1:8786
  mcr extract videos/ --store store/ --set acoustic.hop=0.02 --language none
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any

from extractors.base import DEFAULT_EXTRACTORS
from pipeline.options import Bound
from workflows.cluster import WORKERS
from workflows.extract import ExtractSummary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a folder of videos or a manifest .csv")
    p.add_argument("--store", required=True, help="store folder or fsspec URL (shared by all workers)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler (default: start a LocalCluster)")
    p.add_argument("--workers", type=WORKERS, default=None, metavar="N",
                   help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--force", action="store_true", help="recompute every stream, even those up to date")
    for modality, name in DEFAULT_EXTRACTORS.items():
        p.add_argument(f"--{modality}", default=name, metavar="NAME",
                       help=f"{modality} extractor, or 'none' to skip the modality (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="MODALITY.FIELD=VALUE", dest="options",
                   help="override an extractor config field (value parsed as JSON, else a string); repeatable")
    p.add_argument("--chunk-seconds", type=Bound(float, 0, 86_400), default=30.0, metavar="S",
                   help="cut videos longer than 1.5 S into chunks of about S seconds (in silences) that run on every "
                        "worker; part of the audio streams' config (a change recomputes them); 0: one task per "
                        "video (default: %(default)s)")
    p.add_argument("--retries", type=Bound(int, 0, 100), default=2, help="retries of a video whose worker died (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["acoustic.hop=0.02", "visual.fps=5"]`` -> ``{"acoustic": {"hop": 0.02}, "visual": {"fps": 5}}``."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        modality, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--set {item!r}: expected MODALITY.FIELD=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(modality, {})[name] = value
    return options


def format_summary(summary: ExtractSummary) -> str:
    hours = summary.media_seconds / 3600
    lines = [
        f"videos      : {summary.done} extracted, {summary.skipped} up to date (skipped), {summary.failed} failed",
        *([f"long videos : cut into {summary.chunks} chunks, each its own task"] if summary.chunks else []),
        "recomputed  : " + (", ".join(f"{m} {n}" for m, n in summary.computed.items()) or "nothing"),
        f"media       : {hours:.3f} h extracted ({summary.media_seconds:.1f} s)",
        "scan        : " + (f"{_files(len(summary.skipped_files))} passed over (listed below)"
                               if summary.skipped_files else "no file passed over"),
        *[f"warnings    : {line}" for line in summary.warning_lines()],
        f"throughput  : {summary.throughput:.2f}x real time on {summary.workers} workers",
        f"wall time   : {summary.wall_seconds:.1f} s",
    ]
    return "\n".join(lines)


def _files(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'}"


def format_skipped(skipped: list[dict[str, str]], limit: int = 20) -> str:
    """``skipped 3 files:``, then one line per file (``  notes.txt: not a video or audio file (.txt)``), the
    first ``limit`` of them."""
    lines = [f"skipped {_files(len(skipped))}:"]
    lines += [f"  {s['path']}: {s['reason']}" for s in skipped[:limit]]
    if len(skipped) > limit:
        reasons: dict[str, int] = {}
        for s in skipped[limit:]:
            key = s["reason"].split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        lines.append(f"  ... and {len(skipped) - limit} more: "
                     + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())))
    return "\n".join(lines)


def format_failures(failures: list[dict[str, Any]], width: int = 100) -> str:
    rows = [(f["video_id"], f["stage"] or "?", (f["message"] or "").replace("\n", " ")) for f in failures]
    w_id = max([8] + [len(r[0]) for r in rows])
    w_stage = max([5] + [len(r[1]) for r in rows])
    out = [f"{'video_id':<{w_id}}  {'stage':<{w_stage}}  error", f"{'-' * w_id}  {'-' * w_stage}  {'-' * 5}"]
    for vid, stage, message in rows:
        room = max(20, width - w_id - w_stage - 4)
        out.append(f"{vid:<{w_id}}  {stage:<{w_stage}}  {message[:room - 1] + '…' if len(message) > room else message}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from pipeline.corpus import load_corpus
    from pipeline.store import FeatureStore
    from workflows.extract.chunks import ChunkConfig
    from workflows.cluster import absolute, open_client
    from workflows.extract import build_extractors, extract_corpus, one_task

    sources = load_corpus(args.input)
    options = parse_options(args.options)
    names = {m: (None if getattr(args, m).lower() == "none" else getattr(args, m)) for m in DEFAULT_EXTRACTORS}
    extractors = build_extractors(names, options)
    if args.chunk_seconds < 0:
        raise ValueError(f"--chunk-seconds {args.chunk_seconds}: give a length in seconds, or 0 for no chunks")
    chunking = ChunkConfig(seconds=args.chunk_seconds) if args.chunk_seconds else None
    skipped = getattr(sources, "skipped", [])
    if not sources:
        if skipped:
            print(format_skipped(skipped), file=sys.stderr)
        raise FileNotFoundError(f"{args.input}: [scan] no video or audio files found"
                                + (f" ({_files(len(skipped))} passed over, listed above)" if skipped else ""))
    if skipped:
        print(f"{_files(len(skipped))} passed over (not video or audio, hidden, ...): listed at the end",
              file=sys.stderr)
    store = FeatureStore(absolute(args.store))
    in_process = one_task(sources, chunking)  # one short file: one worker in this process, models loaded at once
    with store.writing(), open_client(args.scheduler, args.workers, in_process=in_process,
                                      warm_numba=any(e.uses_numba for e in extractors)) as client:
        print(f"{len(sources)} media files -> {store.url} "
              f"({', '.join(f'{e.modality}: {e.name}' for e in extractors)})", file=sys.stderr)
        summary = extract_corpus(sources, store, client=client, extractors=extractors, force=args.force,
                                 progress=not args.no_progress, retries=args.retries, chunking=chunking)
    print(format_summary(summary))
    if summary.skipped_files:
        print("\n" + format_skipped(summary.skipped_files))
    if summary.failures:
        print(f"\n{summary.failed} failed:")
        print(format_failures(summary.failures, width=max(80, shutil.get_terminal_size().columns)))
        return 1
    return 0


if __name__ == "__main__":
    from workflows.cli import main

    sys.exit(main(["extract", *sys.argv[1:]]))
