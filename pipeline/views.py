"""Model-facing views of a feature store: the word-aligned table and unaligned per-segment sequences.

Both select by time: a word belongs to a segment when its midpoint lies in the segment's [start, end)
(:func:`words_inside`, the one place that rule is written); a frame when its ``time`` does. Stream times are
relative to the video, so segments of one video share its streams.

Visual streams may hold several faces (``face_id``, see ``extractors.visual``). Both views serve one face per
segment (:func:`segment_face_rows`): the segment's ``face_id`` when its frame has that column (e.g. from
``workflows.annotate.faces.choose_faces``), else the face with the most rows in the segment's window.

Annotation and the report read the store only through the small readers at the end of this module
(:func:`video_words`, :func:`frame_times`, :func:`voice_series`, :func:`face_frames`, :func:`stream_settings`).
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch.utils.data import Dataset

from pipeline.arrays import MODALITIES
from pipeline.store import FeatureStore, feature_matrix

FRAME_MODALITIES = ("acoustic", "visual")
DEFAULT_MAX_LEN = {"language": 50, "acoustic": 375, "visual": 500}


def _segments(store: FeatureStore, video_ids: Iterable[str] | None, split: str | None,
              segments: pd.DataFrame | None = None) -> pd.DataFrame:
    segs = store.segments() if segments is None else segments
    if video_ids is not None:
        segs = segs[segs["video_id"].isin(set(video_ids))]
    if split is not None:
        segs = segs[segs["split"] == split]
    return segs.reset_index(drop=True)


def rows_in_window(times: np.ndarray, start: float, end: float | None) -> np.ndarray:
    """Boolean mask of ``times`` in [start, end) (end None or NaN: to the end)."""
    end = math.inf if end is None or (isinstance(end, float) and math.isnan(end)) else end
    return (times >= start) & (times < end)


def word_times(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(W,) the instant that places each word in a segment: its midpoint."""
    return (np.asarray(starts, np.float64) + np.asarray(ends, np.float64)) / 2


def words_inside(starts: np.ndarray, ends: np.ndarray, start: float, end: float | None) -> np.ndarray:
    """(W,) bool: the words of the segment [start, end) (end None or NaN: to the end), by their midpoint."""
    return rows_in_window(word_times(starts, ends), start, end)


def _frame_weights(table: pa.Table) -> np.ndarray:
    """1 for frames that count in averages: all of them, or those with a face when the stream has ``face``."""
    if "face" in table.column_names:
        return np.asarray(table.column("face").to_numpy(zero_copy_only=False), dtype=bool)
    return np.ones(table.num_rows, dtype=bool)


def face_ids(table: pa.Table) -> np.ndarray:
    """(R,) int32 face track ids of a visual stream's rows: its ``face_id`` column where set, else (files written
    before the column existed, alone or concatenated with newer ones) 0 on a row with a face and -1 without one;
    a stream without a ``face`` column is all face 0."""
    derived = np.where(_frame_weights(table), 0, -1).astype(np.int32)
    if "face_id" not in table.column_names:
        return derived
    column = table.column("face_id")
    given = column.fill_null(-2).to_numpy(zero_copy_only=False).astype(np.int32)
    return np.where(given == -2, derived, given)


def segment_face(value: Any) -> int | None:
    """A segment's ``face_id`` as an int; None when absent or missing (NaN, None): the views then choose."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)) or value is pd.NA:
        return None
    return int(value)


def segment_face_rows(ids: np.ndarray, in_window: np.ndarray, chosen: int | None = None) -> np.ndarray:
    """Boolean mask of the rows (anywhere in the video) that a segment serves of a visual stream: ids (R,) from :func:`face_ids`; in_window (R,) bool, the segment's rows. ``chosen`` None: the face with the most
    rows in the window (ties: the lowest id). The mask keeps that face's rows and the rows of frames where no face
    was found at all (``face_id`` -1, zeros, as a single-face stream has them), so a single-face stream is served
    whole; ``chosen`` -1 keeps nothing (the segment has no face: the modality is masked).
    """
    if chosen is None:
        counts = np.bincount(ids[in_window & (ids >= 0)])
        return (ids == int(np.argmax(counts))) | (ids == -1) if counts.size else ids == -1
    return (ids == chosen) | (ids == -1) if chosen >= 0 else np.zeros(len(ids), bool)


def average_frames(times: np.ndarray, features: np.ndarray, valid: np.ndarray, starts: np.ndarray,
                   ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the frames with ``time`` in each [start, end], as P2FA-aligned benchmarks average per word.

    times (T,) sorted, features (T, d), valid (T,) bool, starts/ends (W,). A word with no frame inside takes
    the frame nearest its midpoint. Only ``valid`` frames with finite values count; a word without any gets
    zeros. Returns means (W, d) float32 and the number of frames averaged (W,) int.
    """
    assert times.ndim == 1 and features.shape[0] == times.shape[0], f"{times.shape} vs {features.shape}"
    W, d = len(starts), features.shape[1]
    if len(times) == 0:
        return np.zeros((W, d), np.float32), np.zeros(W, np.int64)
    lo = np.searchsorted(times, starts, side="left")
    hi = np.searchsorted(times, ends, side="right")
    empty = hi <= lo
    if empty.any():  # nearest frame to the midpoint
        mid = (starts[empty] + ends[empty]) / 2
        j = np.clip(np.searchsorted(times, mid), 1, len(times) - 1)
        nearest = np.where(np.abs(times[j - 1] - mid) <= np.abs(times[j] - mid), j - 1, j)
        nearest = np.where(len(times) == 1, 0, nearest)
        lo[empty], hi[empty] = nearest, nearest + 1
    ok = valid[:, None] & np.isfinite(features)                               # (T, d)
    x = np.where(ok, features, 0.0).astype(np.float64)
    csum = np.concatenate([np.zeros((1, d)), np.cumsum(x, axis=0)])         # (T+1, d)
    ccount = np.concatenate([np.zeros((1, d)), np.cumsum(ok, axis=0)])      # (T+1, d)
    total, count = csum[hi] - csum[lo], ccount[hi] - ccount[lo]              # (W, d)
    means = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    frames = np.concatenate([[0], np.cumsum(valid)])
    return means.astype(np.float32), (frames[hi] - frames[lo]).astype(np.int64)


def word_aligned(store: FeatureStore, *, modalities: Sequence[str] = FRAME_MODALITIES,
                 video_ids: Iterable[str] | None = None, split: str | None = None) -> pa.Table:
    """The word-aligned setting: one row per word of each segment, frames averaged over the word's [start, end].

    Columns: video_id, segment_id, split, word_index (in the segment), word, start, end, ``language`` (the
    word's vector), then per frame modality ``<m>`` (the mean, fixed-size list) and ``<m>_frames`` (how many
    frames were averaged). With the default whole-video segments this is one row per recognised word. Visual
    frames are those of the segment's face (:func:`segment_face_rows`; the store's segments may name it in a
    ``face_id`` column).
    """
    segs = _segments(store, video_ids, split)
    columns: dict[str, list] = {k: [] for k in ("video_id", "segment_id", "split", "word_index", "word", "start",
                                                "end", "language", *modalities,
                                                *[f"{m}_frames" for m in modalities])}
    dims = {m: _feature_dim(store, m) for m in ("language", *modalities)}
    for vid, vsegs in segs.groupby("video_id", sort=True):
        words = store.read_stream("language", [vid])
        if words.num_rows == 0:
            continue
        w_start = words.column("start").to_numpy().astype(np.float64)
        w_end = words.column("end").to_numpy().astype(np.float64)
        w_feat = feature_matrix(words)
        streams = {}
        for m in modalities:
            frames = store.read_stream(m, [vid])
            times = frames.column("time").to_numpy().astype(np.float64) if frames.num_rows else np.zeros(0)
            order = np.argsort(times, kind="stable")
            ids = face_ids(frames)[order] if m == "visual" and frames.num_rows else None
            streams[m] = (times[order], feature_matrix(frames)[order] if frames.num_rows else
                          np.zeros((0, dims[m]), np.float32), _frame_weights(frames)[order], ids)
        text = words.column("word").to_pylist()
        for seg in vsegs.itertuples(index=False):
            idx = np.flatnonzero(words_inside(w_start, w_end, seg.start, seg.end))
            means = {}
            for m in modalities:
                times, feats, valid, ids = streams[m]
                if ids is not None:  # one face per segment, as SegmentDataset serves it
                    rows = segment_face_rows(ids, rows_in_window(times, seg.start, seg.end),
                                             segment_face(getattr(seg, "face_id", None)))
                    times, feats, valid = times[rows], feats[rows], valid[rows]
                means[m] = average_frames(times, feats, valid, w_start[idx], w_end[idx])
            for k, i in enumerate(idx):
                columns["video_id"].append(vid)
                columns["segment_id"].append(seg.segment_id)
                columns["split"].append(seg.split if isinstance(seg.split, str) else None)  # pandas: NaN
                columns["word_index"].append(k)
                columns["word"].append(text[i])
                columns["start"].append(w_start[i])
                columns["end"].append(w_end[i])
                columns["language"].append(w_feat[i])
                for m in modalities:
                    columns[m].append(means[m][0][k])
                    columns[f"{m}_frames"].append(int(means[m][1][k]))
    arrays = {}
    for name, values in columns.items():
        if name in dims:
            matrix = np.stack(values) if values else np.zeros((0, dims[name]), np.float32)
            flat = pa.array(matrix.astype(np.float32).reshape(-1))
            arrays[name] = pa.FixedSizeListArray.from_arrays(flat, dims[name])
        else:
            arrays[name] = pa.array(values, type={"split": pa.string(), "word": pa.string(), "video_id": pa.string(),
                                                  "segment_id": pa.string()}.get(name))
    meta = {f"{m}_feature_names": store.stream_metadata(m).get("feature_names", "[]") for m in dims}
    return pa.table(arrays).replace_schema_metadata(meta)


def _feature_dim(store: FeatureStore, modality: str) -> int:
    names = store.stream_metadata(modality).get("feature_names")
    return len(json.loads(names)) if names else 0


class SegmentDataset(Dataset):
    """Model-ready unaligned sequences, one item per segment of the store (a ``torch.utils.data.Dataset``).

    Each item is a dict: ``<m>`` float32 (max_len[m], d_m) and ``<m>_mask`` bool (max_len[m],) for each stored
    modality (True where a real word/frame is; sequences longer than ``max_len`` keep their first rows), and
    ``<m>_length``; ``label``, ``segment_id``, ``video_id``, ``start``, ``end``, ``split``, ``transcript``.
    Streams are read per video on demand and the last ``cache_videos`` videos are kept in memory.
    """

    def __init__(self, store: FeatureStore | str, *, max_len: dict[str, int] | None = None, split: str | None = None,
                 label: str | None = "label", modalities: Sequence[str] | None = None,
                 video_ids: Iterable[str] | None = None, cache_videos: int = 8,
                 segments: pd.DataFrame | None = None):
        """
        Args:
            store: the feature store (or its path/URL).
            max_len: per-modality maximum sequence length (defaults: language 50, acoustic 375, visual 500).
            split: keep only the segments of this split (None: all).
            label: the segments' label column to serve as ``label`` (float tensor when numeric; NaN if absent).
            modalities: which streams to serve (default: those present in the store).
            video_ids: restrict to these videos.
            cache_videos: how many videos' streams to keep in memory.
            segments: serve these segments (columns video_id, segment_id, start, end, split) instead of the
                store's ``segments.parquet``, e.g. utterances cut for prediction. An optional ``face_id`` column
                names the face whose visual rows a segment serves (-1: none, the visual modality is masked;
                missing: the face with the most rows in the window, see :func:`segment_face_rows`).
        """
        self.store = store if isinstance(store, FeatureStore) else FeatureStore(store)
        self.max_len = {**DEFAULT_MAX_LEN, **(max_len or {})}
        self.label = label
        self.modalities = tuple(modalities or [m for m in MODALITIES if self.store.stream_video_ids(m)])
        if unknown := [m for m in self.modalities if m not in MODALITIES]:
            raise ValueError(f"unknown modalities {unknown}; one of {MODALITIES}")
        self.dims = {m: _feature_dim(self.store, m) for m in self.modalities}
        self.segments = _segments(self.store, video_ids, split, segments)
        self.cache_videos = cache_videos
        self._cache: OrderedDict[str, dict[str, tuple]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.segments)

    def _video(self, video_id: str) -> dict[str, tuple]:
        if video_id in self._cache:
            self._cache.move_to_end(video_id)
            return self._cache[video_id]
        streams = {}
        for m in self.modalities:
            t = self.store.read_stream(m, [video_id])
            if t.num_rows == 0:
                streams[m] = (np.zeros(0), np.zeros((0, self.dims[m]), np.float32), [], None)
            elif m == "language":
                times = word_times(t.column("start").to_numpy(), t.column("end").to_numpy())
                streams[m] = (times, feature_matrix(t), t.column("word").to_pylist(), None)
            else:
                streams[m] = (t.column("time").to_numpy().astype(np.float64), feature_matrix(t), [],
                              face_ids(t) if m == "visual" else None)
        self._cache[video_id] = streams
        while len(self._cache) > self.cache_videos:
            self._cache.popitem(last=False)
        return streams

    def __getitem__(self, index: int) -> dict[str, Any]:
        seg = self.segments.iloc[index]
        end = None if pd.isna(seg["end"]) else float(seg["end"])
        streams = self._video(seg["video_id"])
        item: dict[str, Any] = {}
        for m in self.modalities:
            times, feats, words, ids = streams[m]
            in_window = rows_in_window(times, float(seg["start"]), end)
            if ids is not None:  # a visual stream: one face's rows
                in_window &= segment_face_rows(ids, in_window, segment_face(seg.get("face_id")))
            keep = np.flatnonzero(in_window)
            n, limit = min(len(keep), self.max_len[m]), self.max_len[m]
            x = np.zeros((limit, self.dims[m]), np.float32)                   # (T, d)
            x[:n] = feats[keep[:n]]
            mask = np.zeros(limit, bool)
            mask[:n] = True
            item[m], item[f"{m}_mask"], item[f"{m}_length"] = torch.from_numpy(x), torch.from_numpy(mask), n
            if m == "language":
                item["transcript"] = " ".join(words[i] for i in keep).strip()
        value = seg.get(self.label) if self.label else None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            item["label"] = torch.tensor(float("nan"))
        elif isinstance(value, (int, float, np.number)):
            item["label"] = torch.tensor(float(value), dtype=torch.float32)
        else:
            item["label"] = value
        item.update(segment_id=seg["segment_id"], video_id=seg["video_id"], start=float(seg["start"]), end=end,
                    split=seg["split"] if isinstance(seg["split"], str) else None)
        item.setdefault("transcript", "")
        return item


def collate_segments(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items of :class:`SegmentDataset`: tensors stacked to (B, ...), lengths as a (B,) tensor, rest as lists."""
    assert items, "empty batch"
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif key.endswith("_length"):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


# ------------------------------------------------------------------------ one video's streams, for annotation
def video_words(store: FeatureStore, video_id: str,
                columns: Sequence[str] = ("start", "end", "word", "probability", "utterance")) -> pd.DataFrame:
    """One video's words, in time order: the ``columns`` the language stream has (none without words)."""
    table = store.read_stream("language", [video_id])
    if table.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns if c in ("start", "end")})
    words = table.select([c for c in columns if c in table.column_names]).to_pandas()
    return words.sort_values("start", kind="stable").reset_index(drop=True)


def frame_times(store: FeatureStore, modality: str, video_id: str) -> np.ndarray:
    """(N,) the ``time`` column of one video's frame stream (acoustic, visual or voice), in stored order."""
    return np.asarray(store.read_stream(modality, [video_id], columns=["time"]).column("time"), np.float64)


@dataclass(frozen=True)
class VoiceSeries:
    """One video's ``voice`` stream (``extractors.voice``), in time order: times (A,) s, level_db (A,), speech (A,)
    bool, its frame shift and the ``detector`` that made it (None, and empty arrays, without stream or audio)."""

    times: np.ndarray
    level_db: np.ndarray
    speech: np.ndarray
    frame_shift: float
    detector: str | None


def voice_series(store: FeatureStore, video_id: str) -> VoiceSeries:
    """The voice stream of one video as :class:`VoiceSeries`."""
    table = store.read_stream("voice", [video_id])
    meta = store.stream_metadata("voice", video_id) if store.has_stream("voice", video_id) else {}
    hop = json.loads(meta.get("frame_shift") or "null") or 0.01
    if not table.num_rows:
        return VoiceSeries(np.zeros(0), np.zeros(0), np.zeros(0, bool), hop, meta.get("detector"))
    names = json.loads(meta["feature_names"])
    times = table.column("time").to_numpy().astype(np.float64)
    order = np.argsort(times, kind="stable")
    values = feature_matrix(table)[order].astype(np.float64)
    return VoiceSeries(times[order], values[:, names.index("level_db")], values[:, names.index("speech")] > 0.5,
                       hop, meta.get("detector"))


@dataclass(frozen=True)
class FaceFrames:
    """One video's visual rows (one per sampled frame and face, see ``extractors.visual``): times (R,), face_ids (R,)
    int32 (-1: no face in that frame), boxes (R, 4) x0 y0 x1 y1 fractions of the frame (NaN without a ``box``
    column), blendshapes (R, 52) or None, features (R, n_AU) or None; the names of both."""

    times: np.ndarray
    face_ids: np.ndarray
    boxes: np.ndarray
    blendshapes: np.ndarray | None
    blendshape_names: list[str]
    features: np.ndarray | None
    feature_names: list[str]
    frame_shift: float


def face_frames(store: FeatureStore, video_id: str) -> FaceFrames:
    """The visual stream of one video as :class:`FaceFrames` (no rows without one)."""
    table = store.read_stream("visual", [video_id])
    meta = store.stream_metadata("visual", video_id) if table.num_rows else {}
    times = table.column("time").to_numpy().astype(np.float64) if table.num_rows else np.zeros(0)
    distinct = np.unique(times)
    shift = json.loads(meta.get("frame_shift") or "null") or \
        (float(np.median(np.diff(distinct))) if len(distinct) > 1 else 0.1)
    boxes = feature_matrix(table, "box").astype(np.float64) if "box" in table.column_names and table.num_rows \
        else np.full((len(times), 4), np.nan)
    matrix = {c: feature_matrix(table, c) if c in table.column_names and table.num_rows else None
              for c in ("blendshapes", "features")}
    return FaceFrames(times, face_ids(table) if table.num_rows else np.zeros(0, np.int32), boxes,
                      matrix["blendshapes"], json.loads(meta.get("blendshape_names", "[]")), matrix["features"],
                      json.loads(meta.get("feature_names", "[]")), float(shift))


def stream_settings(store: FeatureStore, modality: str, video_ids: Iterable[str]) -> dict[str, tuple[str, dict]]:
    """(extractor name, config) that made each of ``video_ids``'s ``modality`` stream, for those the store has."""
    out = {}
    for vid in video_ids:
        info = store.stream_info(modality, vid)
        if info is not None and info.extractor:
            out[vid] = (info.extractor, json.loads(info.metadata.get("config", "{}")))
    return out


def extracted_videos(store: FeatureStore) -> dict[str, float]:
    """video_id -> duration (s) of every video the store holds whole (status ``done``)."""
    videos = store.videos()
    done = videos[videos["status"] == "done"]
    return {str(v): float(d or 0.0) for v, d in zip(done["video_id"], done["duration"])}
