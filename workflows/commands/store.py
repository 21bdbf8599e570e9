"""Look after a feature store: summarise it (ls) or remove the videos no manifest names (prune).

`ls` prints the videos (done, failed), their duration, the segments, each label column with its counts (or the
range of a numeric one), the splits and the streams present; --json prints the same as one JSON object.

`prune` removes the streams, videos.parquet rows and segments of every video of the store that none of the given
manifests names (a row's video is found as `mcr label` finds it). It only lists them unless --yes is given, and
it refuses when the manifests name no video of the store at all (a wrong manifest would empty it).

Examples:
  mcr store ls store/
  mcr store ls store/ --json | jq .labels
  mcr store prune store/ cremad.csv meld.csv          # what would go
  mcr store prune store/ cremad.csv meld.csv --yes    # remove it
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.arrays import STORED_MODALITIES
from pipeline.store import SEGMENT_COLUMNS, FeatureStore

HELP = "Summarise a feature store (ls) or remove the videos no manifest names (prune)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", help="summarise the store", description="Summarise a feature store.")
    ls.add_argument("store", metavar="STORE", help="the feature store (folder or fsspec URL)")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    prune = sub.add_parser("prune", help="remove the videos no manifest names",
                           description="Remove the videos of the store that none of the manifests names.")
    prune.add_argument("store", metavar="STORE", help="the feature store (folder or fsspec URL)")
    prune.add_argument("manifests", metavar="MANIFEST", nargs="+", help="manifest CSVs naming the videos to keep")
    prune.add_argument("--yes", action="store_true", help="remove them (default: only list them)")
    for action in (ls, prune):  # `mcr store ls STORE --debug` as well as `mcr --debug store ls STORE`
        action.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="on an error, show the full traceback")


def _label_summary(values: pd.Series) -> dict[str, Any]:
    present = values.dropna()
    if present.empty:
        return {"labelled": 0}
    if pd.api.types.is_numeric_dtype(present) or all(isinstance(v, (int, float)) for v in present):
        present = present.astype(float)
        return {"labelled": int(len(present)), "min": float(present.min()), "max": float(present.max()),
                "mean": float(present.mean())}
    return {"labelled": int(len(present)), "counts": {str(k): int(n) for k, n in present.value_counts().items()}}


def summary(store: FeatureStore) -> dict[str, Any]:
    """What ``mcr store ls`` prints, as a JSON-able dict."""
    videos, segments = store.videos(), store.segments()
    status = videos["status"].fillna("unknown").value_counts() if len(videos) else pd.Series(dtype=int)
    done = videos[videos["status"] == "done"] if len(videos) else videos
    failed = videos[videos["status"] == "failed"] if len(videos) else videos
    streams = {m: len(store.stream_video_ids(m)) for m in STORED_MODALITIES}
    labels = [c for c in segments.columns if c not in SEGMENT_COLUMNS]
    duration = pd.to_numeric(done["duration"], errors="coerce").sum() if len(done) else 0.0
    return {
        "store": store.url,
        "videos": {"total": int(len(videos)), **{str(k): int(n) for k, n in status.items()}},
        "duration_seconds": round(float(duration), 3),
        "failed": [{"video_id": r["video_id"], "stage": r.get("error_stage"), "error": r.get("error_message")}
                   for r in failed.to_dict("records")],
        "segments": int(len(segments)),
        "segmented_videos": int(segments["video_id"].nunique()),
        "splits": {str(k): int(n) for k, n in segments["split"].fillna("none").value_counts().items()},
        "labels": {c: _label_summary(segments[c]) for c in labels},
        "streams": streams,
    }


def format_summary(s: dict[str, Any]) -> str:
    v = s["videos"]
    lines = [f"store     : {s['store']}",
             f"videos    : {v['total']} ({v.get('done', 0)} done, {v.get('failed', 0)} failed)",
             f"duration  : {s['duration_seconds'] / 3600:.3f} h ({s['duration_seconds']:.1f} s, done videos)",
             f"segments  : {s['segments']} of {s['segmented_videos']} videos",
             f"splits    : {', '.join(f'{k} {n}' for k, n in s['splits'].items()) or 'none'}",
             f"streams   : {', '.join(f'{m} {n} videos' for m, n in s['streams'].items())}"]
    for i, (name, label) in enumerate(s["labels"].items()):
        if "counts" in label:
            detail = ", ".join(f"{k} {n}" for k, n in list(label["counts"].items())[:12])
            detail += " ..." if len(label["counts"]) > 12 else ""
        elif label["labelled"]:
            detail = f"{label['min']:.2f}..{label['max']:.2f}, mean {label['mean']:.2f}"
        else:
            detail = "no values"
        lines.append(f"{'labels' if i == 0 else '':<10}: {name}: {label['labelled']} labelled: {detail}")
    if not s["labels"]:
        lines.append("labels    : none (mcr label STORE MANIFEST adds them)")
    for f in s["failed"][:10]:
        lines.append(f"failed    : {f['video_id']} [{f['stage']}] {(f['error'] or '')[:80]}")
    if len(s["failed"]) > 10:
        lines.append(f"failed    : ... (+{len(s['failed']) - 10})")
    return "\n".join(lines)


def prune_plan(store: FeatureStore, manifests: list[Path]) -> tuple[list[str], int]:
    """The store's videos no manifest names (sorted), and how many of the store's videos the manifests name."""
    from workflows.commands.label import manifest_videos, store_index

    known, by_path = store_index(store)
    named: set[str] = set()
    for manifest in manifests:
        named |= set(manifest_videos(manifest, known, by_path))
    return sorted(known - named), len(known & named)


def remove_videos(store: FeatureStore, video_ids: list[str]) -> None:
    """Remove the videos' streams, then their segments and videos.parquet rows."""
    gone = set(video_ids)
    for vid in video_ids:
        for modality in STORED_MODALITIES:
            folder = store.path(modality, f"video_id={vid}")
            if store.fs.exists(folder):
                store.fs.rm(folder, recursive=True)
    segments = store.segments()
    if segments["video_id"].isin(gone).any():
        store.write_segments(segments[~segments["video_id"].isin(gone)], replace_videos=set(segments["video_id"]))
    videos = store.videos()
    if videos["video_id"].isin(gone).any():
        store.write_videos(videos[~videos["video_id"].isin(gone)])


def run(args: argparse.Namespace) -> int:
    from workflows.commands.label import open_store

    store = open_store(args.store)
    if args.store_command == "ls":
        s = summary(store)
        print(json.dumps(s, indent=2) if args.json else format_summary(s))
        return 0
    manifests = [Path(m) for m in args.manifests]
    remove, kept = prune_plan(store, manifests)
    if not kept:
        raise ValueError(f"{', '.join(map(str, manifests))}: [prune] the manifests name none of the store's videos; "
                         "nothing removed (wrong manifest or store?)")
    if not remove:
        print(f"{store.url}: every video is named by the manifests; nothing to remove")
        return 0
    shown = ", ".join(remove[:20]) + (f" ... (+{len(remove) - 20})" if len(remove) > 20 else "")
    if not args.yes:
        print(f"{store.url}: would remove {len(remove)} videos, keep {kept} (rerun with --yes to remove): {shown}")
        return 0
    with store.writing():  # not while a run extracts into the store
        remove_videos(store, remove)
    print(f"{store.url}: removed {len(remove)} videos, kept {kept}: {shown}")
    return 0


if __name__ == "__main__":
    from workflows.cli import main

    sys.exit(main(["store", *sys.argv[1:]]))
