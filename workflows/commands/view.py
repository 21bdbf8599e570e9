"""A static viewer of a predictions table: a page per video and an index, with every asset local (no server).

Each video's page plays the video with a subtitle track of the predictions, shows a timeline with one mark per
utterance (click a mark to jump there) and the transcript, the current utterance highlighted. Open OUT/index.html
in a browser; the folder can be moved or copied as it is (videos are copied into it unless --link).

Examples:
  mcr view annotations.parquet --out viewer/
  mcr view annotations.csv --out viewer/ --videos footage/ --link
"""
from __future__ import annotations

import argparse

HELP = "A static HTML viewer of predictions: video, subtitles, timeline and transcript per video."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", metavar="PREDICTIONS", help="the .parquet or .csv table of `mcr predict`")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the pages (and videos) into")
    parser.add_argument("--videos", metavar="DIR",
                        help="where to find <video_id>.* for tables without a video_path column")
    parser.add_argument("--link", action="store_true",
                        help="symlink the videos instead of copying them (smaller, but OUT then only works where "
                             "the source files are)")


def run(args: argparse.Namespace) -> int:
    from workflows.viewer import write_viewer

    page = write_viewer(args.predictions, args.out, videos=args.videos, link=args.link)
    print(page)
    return 0
