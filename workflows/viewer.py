"""A static viewer of a predictions table: one page per video and an index, every asset local (no server, no network).

``OUT/index.html`` links each video's page ``OUT/<video_id>/index.html``, which holds the video (copied next to the
page, or symlinked with ``link=True``; only a file PyAV decodes as video or audio, :func:`is_media`) with a subtitle
track of the rows, a timeline with one ``button.mark`` per row (``data-start``/``data-end`` in seconds; a click
seeks the video there and plays) and the transcript, whose current utterance is highlighted as the video plays.
Stylesheet and script (:mod:`workflows.viewer_assets`) are inlined.

The table is ``mcr predict``'s (Parquet or CSV): ``video_id``, ``segment_id``, ``start``, ``end``, ``transcript`` and
the predictions, ``predicted_sentiment`` (+ ``_sd``, ``predicted_polarity``), ``predicted_emotion`` or
``predicted_class`` with ``p_<name>`` probabilities; older tables' ``sentiment``/``sentiment_class``, ``emotion`` and
``label`` are read too; a file that failed (``status`` failed, ``reason``) is a line on the index. The metadata
(Parquet schema key ``mcr``, or a CSV's ``<table>.mcr.json``: run, task, label_names, scale, extractors,
mcr_version, placeholder_labels) is shown on every page; ``placeholder_labels`` puts a warning banner on each.
The pages' HTML is :mod:`workflows.viewer_assets.pages`. The subtitle track is a ``data:`` URL: browsers refuse
``<track>`` files from ``file://`` pages (the ``.vtt`` file is also written beside the page, for other players).
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.corpus import MEDIA_EXTENSIONS, video_id_from_path
from pipeline.csv_cells import restore_frame
from pipeline.files import atomic_write
from pipeline.subtitles import to_webvtt, write_webvtt
from workflows.viewer_assets.pages import clock, index_page, video_page

# browsers play these containers (given a codec they know); others get a note on the page
PLAYABLE = (".mp4", ".m4v", ".webm", ".ogv", ".ogg", ".mov", ".mp3", ".wav", ".m4a", ".oga", ".opus", ".flac")
SCORE, SD, POLARITY = ("predicted_sentiment", "sentiment"), ("predicted_sentiment_sd",), \
    ("predicted_polarity", "sentiment_class")
EMOTION, CLASS = ("predicted_emotion", "emotion"), ("predicted_class", "label")
NAMED_COLOURS = {"happy": "#f2c12e", "happiness": "#f2c12e", "joy": "#f2c12e", "excited": "#f28e2b",
                 "sad": "#4e79a7", "sadness": "#4e79a7", "angry": "#e15759", "anger": "#e15759",
                 "neutral": "#bab0ac", "fear": "#9c6fb6", "fearful": "#9c6fb6", "disgust": "#59a14f",
                 "surprise": "#ff9da7", "surprised": "#ff9da7", "frustrated": "#9c755f", "calm": "#76b7b2",
                 "positive": "#4393c3", "negative": "#d6604d"}
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
DIVERGING = ((-1.0, (178, 24, 43)), (-0.5, (239, 138, 98)), (0.0, (247, 247, 247)), (0.5, (103, 169, 207)),
             (1.0, (33, 102, 172)))  # RdBu: negative red, positive blue


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """The table (rows sorted by video and start) and its ``mcr`` metadata: the Parquet schema's, a CSV's
    ``<table>.mcr.json``, or {} for older tables."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: [view] no such predictions table (mcr predict --out writes one)")
    suffix = path.suffix.lower()
    meta: dict = {}
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        raw = (pq.read_schema(path).metadata or {}).get(b"mcr")
        try:
            meta = json.loads(raw) if raw else {}
        except ValueError:
            meta = {}
        frame = pd.read_parquet(path)
    elif suffix == ".csv":
        frame = restore_frame(pd.read_csv(path, dtype={"video_id": str, "segment_id": str}))  # "007" stays
        sidecar = Path(f"{path}.mcr.json")  # where `mcr predict` puts a CSV's metadata
        try:
            meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        except (OSError, ValueError):
            meta = {}
    else:
        raise ValueError(f"{path}: [view] give the .parquet or .csv table of `mcr predict`")
    missing = [c for c in ("video_id", "start", "end") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: [view] the table has no {', '.join(missing)} column; is it `mcr predict`'s?")
    frame = frame.copy()
    frame["video_id"] = frame["video_id"].astype(str)
    for c in ("start", "end"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    untimed = frame["start"].isna() & ~failed_rows(frame)
    if untimed.any():
        raise ValueError(f"{path}: [view] {int(untimed.sum())} rows have no start time")
    frame["end"] = frame["end"].fillna(frame["start"])
    frame = frame.sort_values(["video_id", "start", "end"], kind="stable").reset_index(drop=True)
    return frame, meta if isinstance(meta, dict) else {}


def failed_rows(frame: pd.DataFrame) -> pd.Series:
    """(N,) bool: the rows of files that failed (``status`` "failed"; they have a ``reason`` and no times)."""
    if "status" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["status"].astype(str).eq("failed")


def _first(frame: pd.DataFrame, names) -> str | None:
    return next((n for n in names if n in frame.columns), None)


def task_of(frame: pd.DataFrame, meta: dict) -> str:
    """``regression``, ``iemocap`` or ``classification``: the metadata's, else guessed from the columns."""
    if meta.get("task") in ("regression", "iemocap", "classification"):
        return meta["task"]
    if _first(frame, SCORE):
        return "regression"
    return "iemocap" if _first(frame, EMOTION) else "classification"


def class_names(frame: pd.DataFrame, meta: dict, task: str) -> list[str]:
    """The classes in the model's order: the metadata's label names, the ``p_*`` columns, else the labels seen."""
    if task == "regression":
        return ["negative", "neutral", "positive"]
    names = meta.get("label_names")
    if isinstance(names, list) and names and task != "regression":
        return [str(n) for n in names]
    probs = [c[2:] for c in frame.columns if c.startswith("p_")]
    if probs:
        return probs
    column = _first(frame, EMOTION if task == "iemocap" else CLASS)
    return sorted(map(str, frame[column].dropna().unique())) if column else []


def class_colours(names: list[str]) -> dict[str, str]:
    colours, k = {}, 0
    for n in names:
        if n.lower() in NAMED_COLOURS and NAMED_COLOURS[n.lower()] not in colours.values():
            colours[n] = NAMED_COLOURS[n.lower()]
        else:
            colours[n] = PALETTE[k % len(PALETTE)]
            k += 1
    return colours


def scale_of(meta: dict) -> tuple[float, float]:
    """The sentiment scale's (low, high): the metadata's ``scale`` ([lo, hi] or {min, max}), else MOSI's (-3, 3)."""
    s = meta.get("scale")
    try:
        lo, hi = (s.get("min", s.get("low")), s.get("max", s.get("high"))) if isinstance(s, dict) else s
        lo, hi = float(lo), float(hi)
        if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
            return lo, hi
    except (TypeError, ValueError):
        pass
    return -3.0, 3.0


def diverging(value: float, lo: float, hi: float) -> str:
    """The RdBu colour of ``value`` on a scale centred on 0 (or on the middle of a one-signed scale)."""
    mid = 0.0 if lo < 0 < hi else (lo + hi) / 2
    half = max(hi - mid, mid - lo) or 1.0
    x = min(1.0, max(-1.0, (value - mid) / half))
    for (x0, c0), (x1, c1) in zip(DIVERGING, DIVERGING[1:]):
        if x <= x1:
            f = (x - x0) / (x1 - x0)
            return "#" + "".join(f"{round(a + f * (b - a)):02x}" for a, b in zip(c0, c1))
    return "#2166ac"


def _float(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def describe_rows(frame: pd.DataFrame, task: str, names: list[str], meta: dict) -> list[dict]:
    """Per row: times, transcript, the label shown (``tag``), its colour, opacity, tooltip and stream notes."""
    lo, hi = scale_of(meta)
    colours = class_colours(names)
    score_col, sd_col, pol_col = _first(frame, SCORE), _first(frame, SD), _first(frame, POLARITY)
    label_col = _first(frame, EMOTION if task == "iemocap" else CLASS)
    prob_cols = [c for c in frame.columns if c.startswith("p_")]
    out = []
    for _, r in frame.iterrows():
        row = {"start": float(r["start"]), "end": max(float(r["end"]), float(r["start"])),
               "transcript": "" if pd.isna(r.get("transcript")) else str(r.get("transcript", "")),
               "segment_id": str(r.get("segment_id", "")), "opacity": 1.0, "value": None, "sd": None}
        probs = {c[2:]: _float(r[c]) for c in prob_cols}
        if task == "regression":
            value, sd = _float(r[score_col]) if score_col else None, _float(r[sd_col]) if sd_col else None
            polarity = str(r[pol_col]) if pol_col and not pd.isna(r[pol_col]) else (
                "neutral" if not value else ("positive" if value > 0 else "negative"))
            row.update(value=value, sd=sd, label=polarity, colour=diverging(value or 0.0, lo, hi),
                       tag=f"{polarity} {value:+.2f}" + (f" ± {sd:.2f}" if sd is not None else "")
                       if value is not None else polarity)
            if sd is not None:
                row["opacity"] = round(max(0.3, 1.0 - sd / (hi - lo) * 2), 3)
        else:
            label = str(r[label_col]) if label_col and not pd.isna(r[label_col]) else (
                max(probs, key=lambda k: probs[k] or 0) if probs else "?")
            p = probs.get(label)
            row.update(label=label, colour=colours.get(label, "#cccccc"),
                       tag=f"{label} {p:.0%}" if p is not None else label)
        details = [f"{k} {v:.2f}" for k, v in probs.items() if v is not None]
        notes = _row_notes(r)
        row["notes"] = notes
        row["title"] = " · ".join([f"{clock(row['start'])}–{clock(row['end'])}", row["tag"], *details, *notes])
        out.append(row)
    return out


def _row_notes(r: pd.Series) -> list[str]:
    notes = []
    if (c := _float(r.get("asr_confidence"))) is not None:
        notes.append(f"ASR confidence {c:.2f}")
    if (s := _float(r.get("face_share"))) is not None:
        notes.append(f"face in {s:.0%} of frames")
    streams = r.get("streams")
    if isinstance(streams, str) or isinstance(streams, (list, tuple, np.ndarray)):
        tokens = re.split(r"[,;|\s]+", streams) if isinstance(streams, str) else map(str, streams)
        present = {{"l": "language", "a": "acoustic", "v": "visual"}.get(t.strip().lower(), t.strip().lower())
                   for t in tokens}
        notes += [f"no {m}" for m in ("language", "acoustic", "visual") if m not in present]
    else:
        notes += [f"no {m}" for m in ("language", "acoustic", "visual")
                  if f"has_{m}" in r.index and not pd.isna(r[f"has_{m}"]) and not bool(r[f"has_{m}"])]
    return notes


def media_files(folder: Path) -> dict[str, Path]:
    """Media under ``folder`` by corpus id (``pipeline.corpus.video_id_from_path``) and by file stem."""
    found: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in MEDIA_EXTENSIONS and p.is_file():
            found.setdefault(p.stem, p)
            found.setdefault(video_id_from_path(p.relative_to(folder)), p)
    return found


def is_media(path: Path) -> bool:
    """Whether ``path`` has a media file's extension and PyAV decodes a video or audio frame from it: the only files
    the viewer copies or links (a table's ``video_path`` may name any file, ``/etc/passwd`` or ``../.ssh/id_rsa``)."""
    if path.suffix.lower() not in MEDIA_EXTENSIONS:  # ffmpeg decodes a .txt as a video of its text (format "tty")
        return False
    try:
        import av

        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type in ("video", "audio")]
            return bool(streams) and next(iter(container.decode(streams[0])), None) is not None
    except Exception:  # noqa: BLE001 - whatever PyAV cannot open or decode is not media
        return False


def find_video(video_id: str, rows: pd.DataFrame, table: Path, videos: dict[str, Path]
               ) -> tuple[Path | None, list[Path]]:
    """The source file and the files refused on the way (not media, :func:`is_media`): the rows' ``video_path``
    (absolute, or relative to the table), else ``videos`` (from :func:`media_files` of ``--videos``), else the path
    the table's store (``<table>.store``, predict's default) recorded, else ``<video_id>.*`` beside the table."""
    paths = list(rows["video_path"].dropna().astype(str).unique()) if "video_path" in rows.columns else []
    if video_id in videos:
        paths.append(str(videos[video_id]))
    store_videos = Path(f"{table}.store") / "videos.parquet"
    if store_videos.is_file():
        known = pd.read_parquet(store_videos, columns=["video_id", "path"])
        paths += list(known.loc[known["video_id"] == video_id, "path"].dropna().astype(str))
    candidates = [c for p in paths for c in (Path(p), table.parent / p)]
    candidates += [p for p in sorted(table.parent.glob(f"{glob_escape(video_id)}.*"))
                   if p.suffix.lower() in MEDIA_EXTENSIONS]
    refused = []
    for candidate in dict.fromkeys(candidates):
        if candidate.is_file():
            if is_media(candidate):
                return candidate, refused
            refused.append(candidate)
    return None, refused


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def place_video(source: Path, folder: Path, link: bool) -> str:
    """Copy (or symlink) ``source`` into ``folder``; the file name the page refers to."""
    name = "video" + source.suffix.lower()
    target = folder / name
    if link:
        if target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(source.resolve(), target)
        return name
    if target.is_symlink():
        target.unlink()
    stat = source.stat()
    if not (target.is_file() and target.stat().st_size == stat.st_size and target.stat().st_mtime >= stat.st_mtime):
        atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
    return name


def media_duration(path: Path | None) -> float | None:
    """The container's duration in seconds (PyAV), or None."""
    if path is None:
        return None
    try:
        import av

        with av.open(str(path)) as container:
            return container.duration / 1e6 if container.duration else None
    except Exception:  # noqa: BLE001 - an unreadable file only loses its duration
        return None


def folder_names(video_ids: list[str]) -> dict[str, str]:
    """A distinct, safe folder name per video id (store ids already are; CSVs may hold anything)."""
    used, names = {"index.html"}, {}
    for vid in video_ids:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", vid).lstrip(".") or "video"
        name, k = base, 1
        while name.lower() in used:
            k += 1
            name = f"{base}-{k}"
        used.add(name.lower())
        names[vid] = name
    return names


def viewer_href(page_dir: str | Path, viewer: str | Path) -> str | None:
    """The link from a page in ``page_dir`` to the viewer ``viewer`` (its folder or index.html); None without one."""
    index = Path(viewer) if Path(viewer).suffix == ".html" else Path(viewer) / "index.html"
    return Path(os.path.relpath(index.resolve(), Path(page_dir).resolve())).as_posix() if index.is_file() else None


def write_viewer(predictions: str | Path, out: str | Path, *, videos: str | Path | None = None,
                 link: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Write the viewer of ``predictions`` into ``out``; returns ``out/index.html``.

    videos: a folder to look for ``<video_id>.*`` in, for tables without ``video_path``.
    link: symlink the videos instead of copying them (the folder then only works where the sources are).
    log: where a file refused as not media is reported (default: stderr); its page says so too.
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    table = Path(predictions)
    frame, meta = read_predictions(table)
    failed = failed_rows(frame)
    failures = [{"video_id": r["video_id"], "reason": str(r.get("reason") or "")}
                for r in frame[failed].to_dict("records")]
    frame = frame[~failed]
    out, videos = Path(out), Path(videos) if videos else None
    if videos is not None and not videos.is_dir():
        raise FileNotFoundError(f"{videos}: [view] --videos is not a folder")
    known = media_files(videos) if videos else {}
    task = task_of(frame, meta)
    names = class_names(frame, meta, task)
    lo, hi = scale_of(meta)
    style = {"colours": class_colours(names), "scale": (lo, hi),
             "gradient": [diverging(lo + (hi - lo) * k / 8, lo, hi) for k in range(9)]}
    folders = folder_names(list(dict.fromkeys(frame["video_id"])))
    entries = []
    for vid, rows in frame.groupby("video_id", sort=True):
        folder = out / folders[vid]
        folder.mkdir(parents=True, exist_ok=True)
        source, refused = find_video(vid, rows, table, known)
        for path in refused:
            log(f"{path}: [view] refused to copy or link it for video {vid!r}: not a video or audio file")
        described = describe_rows(rows, task, names, meta)
        # WebVTT cue text is markup: "<" would open a tag, "&" an entity
        cues = [(r["start"], r["end"], html.escape(f"[{r['tag']}] {r['transcript']}".strip(), quote=False))
                for r in described]
        write_webvtt(folder / "subtitles.vtt", cues)
        track = "data:text/vtt;base64," + base64.b64encode(to_webvtt(cues).encode("utf-8")).decode("ascii")
        media = place_video(source, folder, link) if source else None
        duration = max([media_duration(source) or 0.0] + [r["end"] for r in described]) or 1.0
        entry = {"video_id": vid, "folder": folders[vid], "rows": len(described), "duration": duration,
                 "source": str(source) if source else None, "media": media, "described": described,
                 "refused": [str(path) for path in refused],
                 "playable": source is None or source.suffix.lower() in PLAYABLE}
        atomic_write(folder / "index.html", video_page(entry, task=task, names=names, meta=meta, track=track,
                                                        table=table, **style))
        entries.append(entry)
    atomic_write(out / "index.html", index_page(entries, task=task, names=names, meta=meta, table=table,
                                                failed=failures))
    return out / "index.html"

