"""Batch emotion annotation: new videos -> extraction (reusing a store) -> segments -> model -> one row per segment.

Segments come from the manifest when it names them; otherwise long footage is cut on whisper's utterances, or in
fixed windows (``window``). A video with no words at all is one segment.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.arrays import IEMOCAP_EMOTIONS, ArraySplit, fit_lengths, split_from_records
from pipeline.corpus import VIDEO_EXTENSIONS, load_corpus, video_id_from_path
from pipeline.errors import StageError
from pipeline.files import atomic_write
from pipeline.manifest import Segment, VideoSource
from pipeline.segmenting import utterance_segments, window_segments
from pipeline.store import FeatureStore
from pipeline.store_source import segment_records
from pipeline.subtitles import write_webvtt
from workflows.inference import predict_arrays, require_finite
from workflows.runs import TrainedRun, load_run


def sources_of(input_path: str | Path) -> list[VideoSource]:
    """A single video file, a folder of videos, or a manifest CSV."""
    p = Path(input_path)
    if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
        return [VideoSource(video_id_from_path(p.name), str(p))]
    return load_corpus(p)


def plan_segments(store: FeatureStore, sources: list[VideoSource], *, window: float | None = None
                  ) -> pd.DataFrame:
    """The segments to annotate, one row each (video_id, segment_id, start, end); only successfully extracted videos."""
    videos = store.videos().set_index("video_id")
    rows: list[Segment] = []
    for source in sources:
        if source.video_id not in videos.index or videos.loc[source.video_id, "status"] != "done":
            continue
        duration = float(videos.loc[source.video_id, "duration"] or 0.0)
        if source.segments:
            rows += source.segments
        elif window:
            rows += window_segments(source.video_id, duration, window)
        else:
            words = store.read_stream("language", [source.video_id], columns=["utterance", "start", "end"])
            rows += utterance_segments(source.video_id, words.to_pylist(), duration)
    frame = pd.DataFrame([{"video_id": s.video_id, "segment_id": s.segment_id, "start": s.start,
                           "end": s.end, "split": None} for s in rows],
                         columns=["video_id", "segment_id", "start", "end", "split"])
    return frame


def segments_as_split(store: FeatureStore, segments: pd.DataFrame, *, max_len: int | None,
                      cfg) -> tuple[ArraySplit, list[str]]:
    """Model-ready unaligned arrays of ``segments`` (labels are placeholders) and each segment's transcript."""
    records = segment_records(store, segments, max_len=max_len)
    split = split_from_records(records, max_len=max_len, task=cfg.task)
    if cfg.uses_literal_forms:
        split = fit_lengths(split, (cfg.max_len_l, cfg.max_len_v, cfg.max_len_a))
    return split, [r["transcript"] for r in records]


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def prediction_columns(task: str, outputs: np.ndarray, names: list[str] | None = None) -> dict[str, Any]:
    """Model outputs -> named columns: a sentiment score and class, emotion probabilities, or class probabilities.

    names: the emotions (iemocap, in the order of the model's outputs) or class names (classification).
    """
    if not np.isfinite(outputs).all():  # NaN compares false both ways: it would become "neutral"
        raise ValueError(f"[predict] {int((~np.isfinite(outputs)).sum())} model outputs are not finite; they "
                         "cannot be turned into classes")
    if task == "regression":
        score = outputs.reshape(-1)
        return {"sentiment": score.astype(np.float32),
                "sentiment_class": np.where(score > 0, "positive", np.where(score < 0, "negative", "neutral")),
                "sentiment_7": np.round(np.clip(score, -3, 3)).astype(np.int8)}
    if task == "iemocap":
        emotions = list(names or IEMOCAP_EMOTIONS)
        probs = _softmax(outputs, -1)[..., 1]  # (N, 4): P(emotion present)
        cols = {f"p_{e}": probs[:, i].astype(np.float32) for i, e in enumerate(emotions)}
        cols["emotion"] = np.asarray(emotions)[probs.argmax(1)] if len(probs) else np.asarray([], str)
        return cols
    probs = _softmax(outputs, -1)
    names = names or [str(i) for i in range(outputs.shape[1])]
    cols = {f"p_{n}": probs[:, i].astype(np.float32) for i, n in enumerate(names)}
    cols["label"] = np.asarray(names)[probs.argmax(1)] if len(probs) else np.asarray([], str)
    return cols


def _cue_text(row: pd.Series, task: str) -> str:
    if task == "regression":
        tag = f"[{row['sentiment_class']} {row['sentiment']:+.2f}]"
    elif task == "iemocap":
        tag = f"[{row['emotion']} {row['p_' + row['emotion']]:.0%}]"
    else:
        tag = f"[{row['label']}]"
    return f"{tag} {row['transcript']}".strip()


def write_table(frame: pd.DataFrame, out: str | Path) -> Path:
    """Parquet (``.parquet``) or CSV (``.csv``), written atomically."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
    elif suffix in (".parquet", ".pq"):
        atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        raise ValueError(f"{out}: [predict] write a .parquet or .csv file")
    return out


def predict_videos(input_path: str | Path, run: str | Path | TrainedRun, out: str | Path, *,
                   store: str | Path | None = None, window: float | None = None, vtt_dir: str | Path | None = None,
                   client=None, progress: bool = True, visual: str | None = None) -> pd.DataFrame:
    """Annotate the videos of ``input_path`` with the model of ``run``; writes ``out`` and returns the table.

    Args:
        input_path: a video, a folder of videos or a manifest CSV (its segments are used when it names them).
        run: a trained run directory (``mcr train --out``), or that run already loaded.
        out: ``.parquet`` or ``.csv`` file, one row per segment.
        store: a feature store to extract into and reuse (default: ``<out>.store`` beside ``out``).
        window: cut videos without manifest segments into windows of this many seconds instead of utterances.
        vtt_dir: also write one WebVTT file per video into this folder.
        client: the Dask client of the extraction (None: the current one, ``distributed.get_client()``).
        visual: visual backend (default: the extraction workflow's).
    """
    from workflows.extract import build_extractors, extract_corpus

    trained = run if isinstance(run, TrainedRun) else load_run(run)
    run, cfg = trained.run_dir, trained.config
    if trained.aligned:
        raise ValueError(f"{run}: [predict] this run was trained on word-aligned data; prediction on new videos "
                         "uses unaligned sequences: train with the unaligned view")
    sources = sources_of(input_path)
    store = FeatureStore(store or f"{out}.store")
    extractors = build_extractors({"visual": visual} if visual else None)
    summary = extract_corpus(sources, store, client=client, extractors=extractors, progress=progress)
    if sources and len(summary.failures) == len(sources):  # nothing to predict: say why, file by file
        first, more = summary.failures[0], len(summary.failures) - 1
        message = " ".join(str(first["message"]).split()) + (f" ({more} more failed too)" if more else "")
        raise StageError(first["path"], first["stage"] or "extract", message)
    segments = plan_segments(store, sources, window=window)
    split, transcripts = segments_as_split(store, segments, max_len=trained.max_len, cfg=cfg)
    if len(split) and split.dims != (cfg.d_l, cfg.d_v, cfg.d_a):
        raise ValueError(f"{run}: [predict] the model takes features of sizes {(cfg.d_l, cfg.d_v, cfg.d_a)} "
                         f"(language, visual, acoustic) but the store's extractors give {split.dims}: train the "
                         "model on features from the same extractors")
    outputs = (predict_arrays(trained.model, split, normalizer=trained.normalizer) if len(split)
               else np.zeros((0, cfg.output_dim), np.float32))
    require_finite(outputs, trained.checkpoint, segments["video_id"].to_numpy(), stage="predict")
    frame = segments[["video_id", "segment_id", "start", "end"]].reset_index(drop=True).copy()
    frame["transcript"] = transcripts
    names = trained.label_names if cfg.task == "iemocap" else trained.classes
    for name, values in prediction_columns(cfg.task, outputs, names).items():
        frame[name] = values
    write_table(frame, out)
    if vtt_dir:
        for vid, rows in frame.groupby("video_id"):
            write_webvtt(Path(vtt_dir) / f"{vid}.vtt",
                         [(r.start, r.end, _cue_text(r, cfg.task)) for _, r in rows.iterrows()])
    frame.attrs["failures"] = summary.failures
    return frame
