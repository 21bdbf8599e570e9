"""Write the manifest CSV of a public corpus from its release as published: videos, segments, labels, splits.

CORPUS is one of cmu-mosi, cmu-mosei, iemocap, crema-d, ravdess, meld; RAW_DIR is the corpus's folder as
unpacked. Only file names and label files are read (never the media). Rows whose video file is not there are left
out and listed, so that `mcr extract` does not fail on them. The expected layouts: docs/corpora.md.

Options by corpus:
  cmu-mosi, cmu-mosei   --labels FILE (.csd, or .json/.csv with video_id,start,end,label[,split])
                        --folds FILE (the SDK's cmu_mosi_std_folds.py / cmu_mosei_std_folds.py, or JSON)
  iemocap               --test-session N (leave-one-session-out; default 5)   --classes all|four
  crema-d               --split actors   --media video|audio
  ravdess               --split actors   --modality av|video|audio|all   --channel all|speech|song
  any                   --label-column COLUMN (train on that column instead of the corpus's label)

Examples:
  mcr prepare crema-d ~/data/CREMA-D --out cremad.csv --split actors
  mcr prepare cmu-mosi ~/data/CMU-MOSI --out mosi.csv --labels mosi_segments_labels_splits.json
  mcr prepare iemocap ~/data/IEMOCAP_full_release --out iemocap.csv --test-session 1 --classes four
  mcr prepare meld ~/data/MELD.Raw --out meld.csv --label-column sentiment
  mcr extract cremad.csv --store store/ && mcr train --data store/ --preset iemocap --out runs/cremad
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HELP = "Write the manifest CSV of a public corpus (CMU-MOSI/MOSEI, IEMOCAP, CREMA-D, RAVDESS, MELD)."
OPTIONS = ("labels", "folds", "test_session", "classes", "media", "modality", "channel", "split")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from pipeline.recipes import available

    p.add_argument("corpus", choices=available(), help="the corpus")
    p.add_argument("raw_dir", metavar="RAW_DIR", help="the corpus's folder as released")
    p.add_argument("--out", required=True, metavar="CSV", help="the manifest to write")
    p.add_argument("--labels", metavar="FILE", help="CMU corpora: the labels file (default: the SDK's .csd "
                   "found under RAW_DIR)")
    p.add_argument("--folds", metavar="FILE", help="CMU corpora: the standard folds (default: the SDK's "
                   "*_std_folds.py found under RAW_DIR; a split column of --labels comes first)")
    p.add_argument("--test-session", type=int, metavar="N", help="iemocap: the test session (default 5)")
    p.add_argument("--classes", choices=["all", "four"], help="iemocap: all classes (default) or the four of "
                   "the benchmark (neutral, happy+excited, sad, angry)")
    p.add_argument("--split", choices=["actors"], help="crema-d, ravdess: a speaker-independent split by actor")
    p.add_argument("--media", choices=["video", "audio"], help="crema-d: the video clips (default) or the WAVs")
    p.add_argument("--modality", choices=["av", "video", "audio", "all"],
                   help="ravdess: which files (default av: audio-video)")
    p.add_argument("--channel", choices=["all", "speech", "song"], help="ravdess: vocal channel (default all)")
    p.add_argument("--label-column", metavar="COLUMN",
                   help="make COLUMN the label (the corpus's own label is kept under its name)")


def describe(values: list[Any]) -> str:
    """A label column in one line: the count per class, or the range of numbers."""
    present = [v for v in values if v is not None]
    if not present:
        return "none"
    if all(isinstance(v, (int, float)) for v in present):
        return (f"numbers, {len(present)} labelled, {min(present):.2f}..{max(present):.2f}, "
                f"mean {sum(present) / len(present):.2f}")
    return ", ".join(f"{k} {n}" for k, n in Counter(map(str, present)).most_common())


def run(args: argparse.Namespace) -> int:
    from pipeline.recipes import first_items, prepare_manifest

    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    prepared = prepare_manifest(args.corpus, args.raw_dir, Path(args.out), label_column=args.label_column, **options)
    rows, out = prepared.rows, Path(args.out)
    splits = Counter(r.get("split") or "none" for r in rows)
    print(f"{args.corpus}: {len(rows)} segments of {prepared.videos} videos -> {out}")
    print(f"label     : {describe([r.get('label') for r in rows])}")
    print(f"splits    : {', '.join(f'{k} {n}' for k, n in splits.items())}"
          + ("  (none given: mcr train cuts train/valid/test by video)" if set(splits) == {"none"} else ""))
    if prepared.missing:
        print(f"missing   : {len(prepared.missing)} video files named by the labels are not there, their "
              f"{prepared.missing_rows} segments left out: {first_items(prepared.missing)}")
    if prepared.invalid:
        print(f"invalid   : {len(prepared.invalid)} segments end at or before they start, left out: "
              f"{first_items(prepared.invalid)}")
    return 0


if __name__ == "__main__":
    from workflows.cli import main

    sys.exit(main(["prepare", *sys.argv[1:]]))
