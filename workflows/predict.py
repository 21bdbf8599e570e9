"""Batch emotion annotation: new videos -> extraction (reusing a store) -> segments -> model -> one row per segment.

Segments come from the manifest when it names them, else fixed windows (``window``), else utterances: detected
speech together with whisper's words, plus stretches with a face on screen and no speech; each row's face is the
one whose mouth follows the voice (:mod:`workflows.annotate`). Every row says what it was made of (streams present,
the face, ASR confidence) and
the table's Parquet metadata (key ``mcr``) says which model, task, labels and extractors made it. The table is
described in docs/predictions.md.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.arrays import IEMOCAP_EMOTIONS, MODALITIES, ArraySplit, fit_lengths, normalize, split_from_records
from pipeline.corpus import MEDIA_EXTENSIONS, load_corpus, video_id_from_path
from pipeline.csv_cells import write_frame
from pipeline.errors import StageError
from pipeline.files import atomic_write
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore
from pipeline.store_source import segment_records
from pipeline.subtitles import write_json, write_srt, write_webvtt
from pipeline.views import extracted_videos
from workflows.annotate.faces import choose_faces
from workflows.annotate.rows import RowConfig, coverage, describe, plan_rows
from workflows.annotate.segments import MAX_UTTERANCE, MIN_PAUSE
from workflows.annotate.settings import prediction_extractors
from workflows.inference import predict_arrays, require_finite
from workflows.runs import TrainedRun, is_placeholder, load_run, run_dirs

FACE_METHOD = "active speaker: mouth-voice synchrony (workflows.annotate.faces)"
SENTIMENT_SCALE = [-3.0, 3.0]  # CMU-MOSI/MOSEI's; a run may record its own as data["scale"]
PLACEHOLDER_WARNING = ("WARNING: this model was trained on PLACEHOLDER labels (random numbers, e.g. `make demo`); "
                       "its predictions mean nothing. Train on a labelled corpus (mcr train) for real use.")


def sources_of(input_path: str | Path) -> list[VideoSource]:
    """A single video file, a folder of videos, or a manifest CSV."""
    p = Path(input_path)
    if not p.exists():
        kind = "video or audio file" if p.suffix.lower() in MEDIA_EXTENSIONS else "video, folder or manifest"
        raise FileNotFoundError(f"{p}: [predict] no such {kind}")
    if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS:
        return [VideoSource(video_id_from_path(p.name), str(p))]
    return load_corpus(p)


def within_videos(sources: list[VideoSource], durations: dict[str, float], where: str | Path,
                  log: Callable[[str], None]) -> list[VideoSource]:
    """The sources with their manifest segments inside their videos: an open end (a row with a path alone) or one
    past the video's end becomes the end; a segment that starts at or after it has no input, so it is left out,
    with a warning naming the manifest, the segment and the video's duration."""
    fitted = []
    for source in sources:
        duration = durations.get(source.video_id)
        if duration is None or not source.segments:
            fitted.append(source)
            continue
        inside = []
        for s in source.segments:
            if s.start >= duration:
                end = "end" if s.end is None else f"{s.end:g}"
                log(f"warning: {where}: segment {s.segment_id!r} ({s.start:g}-{end} s) starts after the end of "
                    f"{source.path} ({duration:.2f} s): left out")
            else:
                inside.append(dataclasses.replace(s, end=duration if s.end is None else min(s.end, duration)))
        if inside:
            fitted.append(dataclasses.replace(source, segments=tuple(inside)))
    return fitted


def segments_as_split(store: FeatureStore, segments: pd.DataFrame, *, max_len: int | None,
                      cfg) -> tuple[ArraySplit, list[dict]]:
    """Model-ready unaligned arrays of ``segments`` (labels are placeholders) and their records (a modality a
    segment lacks has 0 steps there: the model masks it)."""
    records = segment_records(store, segments, max_len=max_len)
    split = split_from_records(records, max_len=max_len, task=cfg.task)
    if cfg.uses_literal_forms:
        split = fit_lengths(split, (cfg.max_len_l, cfg.max_len_v, cfg.max_len_a))
    return split, records


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def polarity(score: np.ndarray) -> np.ndarray:
    """negative / neutral / positive: the sign of the score rounded to the 7-point scale (|score| < 0.5: neutral)."""
    score = np.asarray(score, np.float64)
    return np.where(score >= 0.5, "positive", np.where(score <= -0.5, "negative", "neutral"))


def prediction_columns(task: str, outputs: np.ndarray, names: list[str] | None = None) -> dict[str, Any]:
    """Model outputs -> named columns: ``predicted_sentiment`` and ``predicted_polarity`` (regression),
    ``p_<emotion>`` and ``predicted_emotion`` (iemocap), ``p_<class>`` and ``predicted_class`` (classification).

    names: the emotions (iemocap, in the order of the model's outputs) or class names (classification).
    """
    if not np.isfinite(outputs).all():  # NaN compares false both ways: it would become "neutral"
        raise ValueError(f"[predict] {int((~np.isfinite(outputs)).sum())} model outputs are not finite; they "
                         "cannot be turned into classes")
    if task == "regression":
        score = outputs.reshape(-1)
        return {"predicted_sentiment": score.astype(np.float32), "predicted_polarity": polarity(score)}
    if task == "iemocap":
        emotions = list(names or IEMOCAP_EMOTIONS)
        probs = _softmax(outputs, -1)[..., 1]  # (N, 4): P(emotion present), each on its own
        cols = {f"p_{e}": probs[:, i].astype(np.float32) for i, e in enumerate(emotions)}
        cols["predicted_emotion"] = np.asarray(emotions)[probs.argmax(1)] if len(probs) else np.asarray([], str)
        return cols
    probs = _softmax(outputs, -1)
    names = names or [str(i) for i in range(outputs.shape[1])]
    cols = {f"p_{n}": probs[:, i].astype(np.float32) for i, n in enumerate(names)}
    cols["predicted_class"] = np.asarray(names)[probs.argmax(1)] if len(probs) else np.asarray([], str)
    return cols


# ---------------------------------------------------------------------------------------------- uncertainty
def input_shift(split: ArraySplit, normalizer: dict | None) -> np.ndarray:
    """(N,) how unlike the training data each row's inputs are: the root mean square of its real steps' z-scores
    under the run's training statistics, averaged over the modalities it has (about 1 for inputs like the training
    data, growing with the distance); NaN without a normalizer or without any step."""
    if normalizer is None or not len(split):
        return np.full(len(split), np.nan)
    z = normalize(split, normalizer)
    per_modality = []
    for m in MODALITIES:
        x, mask = getattr(z, m), getattr(z, f"{m}_mask")
        count = mask.sum(1) * x.shape[2]
        total = (x.astype(np.float64) ** 2 * mask[..., None]).sum((1, 2))
        per_modality.append(np.where(count > 0, np.sqrt(total / np.maximum(count, 1)), np.nan))
    stacked = np.stack(per_modality)
    present = np.isfinite(stacked).any(0)
    return np.where(present, np.nanmean(np.where(present, stacked, 0.0), axis=0), np.nan)


def regression_spread(trained: TrainedRun, split: ArraySplit) -> tuple[np.ndarray, dict[str, Any]]:
    """(N,) uncertainty of each regression output and how it was measured: the sample sd over the run's seeds;
    NaN (method "none") for a one-seed run.

    Monte Carlo dropout was tried for one-seed runs and left out: on inputs unlike the training data its spread did
    not grow (x0.8-1.0, docs/predictions.md): it would read as confidence where there is none.
    """
    root = trained.run_dir.parent if trained.run_dir.name.startswith("seed-") else trained.run_dir
    try:
        seeds = run_dirs(root)
    except FileNotFoundError:
        seeds = [trained.run_dir]
    if len(seeds) < 2:
        return np.full(len(split), np.nan), {"uncertainty_method": "none", "seeds": 1}
    if not len(split):
        return np.zeros(0), {"uncertainty_method": "seeds", "seeds": len(seeds)}
    outputs = [predict_arrays(r.model, split, normalizer=r.normalizer).reshape(-1)
               for r in (trained if d == trained.run_dir else load_run(d) for d in seeds)]
    return np.std(np.stack(outputs), axis=0, ddof=1), {"uncertainty_method": "seeds", "seeds": len(seeds)}


# ------------------------------------------------------------------------------------------------- metadata
def table_metadata(trained: TrainedRun, extractors, **extra) -> dict[str, Any]:
    """What the ``mcr`` key of the table's Parquet schema metadata holds (see docs/predictions.md)."""
    from workflows.extract import DEFAULT_CHUNKING, ExtractorSpec  # the hashes the streams record

    try:
        version = importlib_metadata.version("mcr-emotion")
    except importlib_metadata.PackageNotFoundError:
        version = "unknown"
    root = trained.run_dir.parent if trained.run_dir.name.startswith("seed-") else trained.run_dir
    task = trained.task
    return {"run": str(root.resolve()), "checkpoint": str(trained.checkpoint.resolve()), "task": task,
            "label_names": trained.label_names,
            "scale": trained.data.get("scale", SENTIMENT_SCALE) if task == "regression" else [0.0, 1.0],
            "extractors": {e.modality: {"name": e.name, "config": e.config_record(),
                                        "config_hash": ExtractorSpec.of(e, DEFAULT_CHUNKING).config_hash}
                           for e in extractors},
            "mcr_version": version, "placeholder_labels": is_placeholder(trained), **extra}


def check_table_path(out: str | Path) -> Path:
    """``out`` as a path when it names a table :func:`write_table` writes (.parquet, .pq or .csv), else ValueError;
    checked before any extraction."""
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ValueError(f"{out}: [predict] the output table must be a .parquet or .csv file")
    return out


def with_failures(frame: pd.DataFrame, failures: list[dict[str, Any]]) -> pd.DataFrame:
    """``frame`` with ``status`` "ok" and an empty ``reason`` on its rows, and a row per file that failed: its
    ``video_id`` and ``video_path``, ``status`` "failed", ``reason`` "[stage] message"; no times, no predictions."""
    frame = frame.copy()
    frame.insert(min(2, frame.shape[1]), "status", "ok")
    frame.insert(3 if frame.shape[1] > 2 else frame.shape[1], "reason", "")
    failed = pd.DataFrame({"video_id": [f["video_id"] for f in failures],
                           "video_path": [f["path"] for f in failures], "status": "failed",
                           "reason": [f"[{f.get('stage') or 'extract'}] {' '.join(str(f.get('message')).split())}"
                                      for f in failures]})
    if not failures:
        return frame
    nullable = {c: "Int64" if pd.api.types.is_integer_dtype(t) else "boolean" for c, t in frame.dtypes.items()
                if pd.api.types.is_integer_dtype(t) or pd.api.types.is_bool_dtype(t)}  # 4 stays 4, not 4.0
    return pd.concat([frame.astype(nullable), failed], ignore_index=True)


def write_table(frame: pd.DataFrame, out: str | Path, metadata: dict | None = None) -> Path:
    """Parquet (``.parquet``, ``metadata`` as JSON under the schema key ``mcr``) or CSV (``.csv``, ``metadata``
    beside it in ``<out>.mcr.json``), written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = check_table_path(out)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        atomic_write(out, lambda tmp: write_frame(frame, tmp))  # no cell a spreadsheet runs (csv_cells)
        if metadata is not None:
            atomic_write(f"{out}.mcr.json", json.dumps(metadata, indent=1, default=str) + "\n")
    else:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if metadata is not None:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   b"mcr": json.dumps(metadata, default=str).encode()})
        atomic_write(out, lambda tmp: pq.write_table(table, tmp))
    return out


# ------------------------------------------------------------------------------------------------ subtitles
def cue_text(row: pd.Series, task: str) -> str:
    """``[positive +0.99 ±0.10] words`` / ``[angry 62%] words`` / ``[ANG 71%] words``; a row without words says
    whether it was speech or only a face."""
    if task == "regression":
        sd = row.get("predicted_sentiment_sd")
        spread = f" ±{sd:.2f}" if sd is not None and np.isfinite(sd) else ""
        tag = f"[{row['predicted_polarity']} {row['predicted_sentiment']:+.2f}{spread}]"
    elif task == "iemocap":
        tag = f"[{row['predicted_emotion']} {row['p_' + row['predicted_emotion']]:.0%}]"
    else:
        tag = f"[{row['predicted_class']} {row['p_' + str(row['predicted_class'])]:.0%}]"
    words = row["transcript"] or ("(speech, no words recognised)" if row.get("speech_share", 0) > 0
                                  else "(no speech)")
    return f"{tag} {words}".strip()


def write_subtitles(frame: pd.DataFrame, meta: dict, *, vtt_dir=None, srt_dir=None, json_dir=None) -> None:
    """One file per video in each folder given; every header names the run, and warns of placeholder labels."""
    warning = [PLACEHOLDER_WARNING] if meta["placeholder_labels"] else []
    notes = warning + [f"mcr predict: model {meta['run']}, task {meta['task']}, labels "
                       f"{', '.join(meta['label_names'])}, uncertainty {meta.get('uncertainty_method', 'none')}"]
    fields = [c for c in frame.columns if c.startswith(("predicted_", "p_"))] + \
        ["segment_id", "asr_confidence", "streams", "face_id", "face_box", "face_share", "speaker_confidence",
         "speaker_uncertain", "speech_share"]
    for vid, rows in frame.groupby("video_id", sort=False):
        cues = [(r.start, r.end, cue_text(r, meta["task"])) for _, r in rows.iterrows()]
        if vtt_dir:
            write_webvtt(Path(vtt_dir) / f"{vid}.vtt", cues, notes)
        if srt_dir:
            write_srt(Path(srt_dir) / f"{vid}.srt", cues, warning)  # SubRip's notes are a cue: only the warning
        if json_dir:
            segs = [{"start": r.start, "end": r.end, "text": r.transcript, **{f: r[f] for f in fields if f in r}}
                    for _, r in rows.iterrows()]
            write_json(Path(json_dir) / f"{vid}.json", segs, notes=notes, video_id=vid, mcr=meta)


# ------------------------------------------------------------------------------------------------ the job
def predict_videos(input_path: str | Path, run: str | Path | TrainedRun, out: str | Path, *,
                   store: str | Path | None = None, window: float | None = None, vtt_dir: str | Path | None = None,
                   srt_dir: str | Path | None = None, json_dir: str | Path | None = None,
                   max_len: float = MAX_UTTERANCE, min_pause: float = MIN_PAUSE, client=None, progress: bool = True,
                   visual: str | None = None, max_faces: int | None = None,
                   log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Annotate the videos of ``input_path`` with the model of ``run``; writes ``out`` and returns the table.

    Args:
        input_path: a video, a folder of videos or a manifest CSV (its segments are used when it names them).
        run: a trained run directory (``mcr train --out``), or that run already loaded.
        out: ``.parquet`` or ``.csv`` file, one row per segment (columns and metadata: docs/predictions.md).
        store: a feature store to extract into and reuse (default: ``<out>.store`` beside ``out``).
        window: cut videos without manifest segments into windows of this many seconds instead of utterances.
        vtt_dir, srt_dir, json_dir: also write one WebVTT / SubRip / whisper-style JSON file per video there.
        max_len: longest utterance, seconds (longer ones are split at a pause).
        min_pause: a pause this long (seconds) between two words starts a new row.
        client: the Dask client of the extraction (None: the current one, ``distributed.get_client()``).
        visual: visual backend, with its default options (default: the run's, configured as it was trained).
        max_faces: faces to look for (default: the store's, else 4); a store extracted otherwise is refused.
        log: where the speech coverage and warnings go (default: stderr).
    """
    from workflows.extract import WARNING_LINES, extract_corpus

    log = log or (lambda message: print(message, file=sys.stderr))
    if not max_len > 0:
        raise ValueError(f"[predict] the longest utterance must be a positive number of seconds, got {max_len}")
    if not min_pause > 0:
        raise ValueError(f"[predict] the pause between rows must be a positive number of seconds, got {min_pause}")
    check_table_path(out)
    trained = run if isinstance(run, TrainedRun) else load_run(run)
    run, cfg = trained.run_dir, trained.config
    if trained.aligned:
        raise ValueError(f"{run}: [predict] this run was trained on word-aligned data; prediction on new videos "
                         "uses unaligned sequences: train with the unaligned view")
    sources = sources_of(input_path)
    store = FeatureStore(store or f"{out}.store")
    extractors = prediction_extractors(trained, store, [s.video_id for s in sources], visual=visual,
                                       max_faces=max_faces, log=log)  # the model's own, configured as they were
    summary = extract_corpus(sources, store, client=client, extractors=extractors, progress=progress)
    for line in summary.warning_lines(at_least=WARNING_LINES + 1):  # fewer files: each had its line already
        log(f"warning: {line}")
    if sources and len(summary.failures) == len(sources):  # nothing to predict: the table and the error say why
        empty = pd.DataFrame(columns=["video_id", "video_path", "segment_id", "start", "end", "transcript"])
        write_table(with_failures(empty, summary.failures), out)
        first, more = summary.failures[0], len(summary.failures) - 1
        message = " ".join(str(first["message"]).split()) + (f" ({more} more failed too)" if more else "")
        raise StageError(first["path"], first["stage"] or "extract", message)
    sources = within_videos(sources, extracted_videos(store), input_path, log)
    plan = plan_rows(store, sources, RowConfig(max_len=max_len, min_pause=min_pause, window=window))
    segments, speech = plan.segments, plan.speech
    faces = choose_faces(store, segments, voices=plan.voices, speech=plan.detected)
    if len(segments):
        segments["face_id"] = faces["face_id"].to_numpy(np.int64)
    split, records = segments_as_split(store, segments, max_len=trained.max_len, cfg=cfg)
    if len(split) and split.dims != (cfg.d_l, cfg.d_v, cfg.d_a):
        raise ValueError(f"{run}: [predict] the model takes features of sizes {(cfg.d_l, cfg.d_v, cfg.d_a)} "
                         f"(language, visual, acoustic) but the store's extractors give {split.dims}: train the "
                         "model on features from the same extractors")
    outputs = (predict_arrays(trained.model, split, normalizer=trained.normalizer) if len(split)
               else np.zeros((0, cfg.output_dim), np.float32))
    require_finite(outputs, trained.checkpoint, segments["video_id"].to_numpy(), stage="predict")

    frame = segments[["video_id", "video_path", "segment_id", "start", "end"]].reset_index(drop=True).copy()
    frame["transcript"] = [r["transcript"] for r in records]
    frame = pd.concat([frame, describe(store, frame, speech).reset_index(drop=True)], axis=1)
    present = {m: np.array([len(r[m]) > 0 for r in records], bool) for m in MODALITIES}
    order = ("language", "acoustic", "visual")
    frame["streams"] = [",".join(m for m in order if present[m][i]) for i in range(len(frame))]
    for m in order:
        frame[f"has_{m}"] = present[m]
    frame["face_id"] = faces["face_id"].to_numpy(np.int64) if len(frame) else np.zeros(0, np.int64)
    frame["face_box"] = list(faces["face_box"]) if len(frame) else []
    for column in ("face_share", "speaker_score", "speaker_confidence"):
        frame[column] = faces[column].to_numpy(np.float64) if len(frame) else np.zeros(0)
    frame["speaker_uncertain"] = faces["speaker_uncertain"].to_numpy(bool) if len(frame) else np.zeros(0, bool)
    names = trained.label_names if cfg.task == "iemocap" else trained.classes
    for name, values in prediction_columns(cfg.task, outputs, names).items():
        frame[name] = values
    frame["input_shift"] = input_shift(split, trained.normalizer).astype(np.float32)
    uncertainty: dict[str, Any] = {}
    if cfg.task == "regression":
        sd, uncertainty = regression_spread(trained, split)
        if uncertainty["uncertainty_method"] == "none":
            log("predicted_sentiment_sd is empty: the run has one seed; train several (mcr train --seeds 3) for an "
                "uncertainty that grows on inputs unlike the training data")
        frame.insert(frame.columns.get_loc("predicted_sentiment") + 1, "predicted_sentiment_sd", sd.astype(np.float32))

    cover = coverage(speech, segments)
    meta = table_metadata(trained, extractors, coverage=cover, vad=plan.detector, faces=FACE_METHOD,
                          max_utterance_seconds=max_len, min_pause_seconds=min_pause, window=window, **uncertainty)
    table = with_failures(frame, summary.failures)  # a file that failed is a row too
    write_table(table, out, meta)
    write_subtitles(frame, meta, vtt_dir=vtt_dir, srt_dir=srt_dir, json_dir=json_dir)
    log(f"speech coverage: {cover['covered_seconds']:.1f} s of {cover['speech_seconds']:.1f} s of detected speech "
        f"have a row ({100 * cover['share']:.0f}%); {cover['uncovered_seconds']:.1f} s of speech have none")
    if uncertain := int(frame["speaker_uncertain"].sum()):
        log(f"{uncertain} of {len(frame)} rows have a speaking face chosen with a small margin (speaker_uncertain)")
    if meta["placeholder_labels"]:
        log(PLACEHOLDER_WARNING)
    table.attrs.update(failures=summary.failures, metadata=meta)
    return table
