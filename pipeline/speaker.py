"""The active speaker of each segment: the face whose mouth opens and closes with the audio's loudness.

A visual stream extracted with ``max_faces > 1`` holds several face tracks (``face_id``). For each segment,
:func:`choose_faces` scores every track seen in the segment's window by the agreement between its mouth opening
and the audio energy at the same instants, and keeps the best; ``SegmentDataset(segments=...)`` then serves that
face's visual rows. The method and its measurements: docs/features.md, "Several faces and the active speaker".
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.store import FeatureStore, feature_matrix
from pipeline.views import _window, face_ids

MIN_FRAMES = 5
"""A track seen in fewer of a segment's frames gets no score (it can still win when no track has one)."""
ENERGY_RANGE_DB = 40.0
"""Audio levels are floored this far below the segment's loud level (95th percentile): digital silence at -100 dB
would otherwise dominate the energy's variance."""
COLUMNS = ("video_id", "segment_id", "face_id", "face_share", "speaker_score")


def mouth_opening(table: pa.Table, metadata: dict[str, str]) -> np.ndarray:
    """(R,) how far apart the lips are on each visual row, about 0..1 (NaN when the stream has no mouth measure).

    MediaPipe: ``jawOpen - mouthClose`` (ARKit's mouthClose closes the lips while the jaw is open, so the
    difference follows the lips). Other backends (py-feat): the mean of AU25 (lips part) and AU26 (jaw drop),
    whichever its ``features`` has.
    """
    names = json.loads(metadata.get("blendshape_names", "[]"))
    if "blendshapes" in table.column_names and "jawOpen" in names:
        shapes = feature_matrix(table, "blendshapes")
        if shapes.any():
            close = shapes[:, names.index("mouthClose")] if "mouthClose" in names else 0.0
            return (shapes[:, names.index("jawOpen")] - close).astype(np.float64)
    features = json.loads(metadata.get("feature_names", "[]"))
    mouth = [features.index(au) for au in ("AU25", "AU26") if au in features]
    if not mouth or "features" not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return feature_matrix(table)[:, mouth].mean(axis=1).astype(np.float64)


def audio_energy(times: np.ndarray, level_db: np.ndarray, at: np.ndarray, width: float) -> np.ndarray:
    """Mean level of the acoustic frames within ``width / 2`` of each visual time ``at`` (nearest frame when none).

    times (A,) sorted acoustic frame times, level_db (A,), at (T,) -> (T,) dB; NaN without acoustic frames.
    """
    if len(times) == 0:
        return np.full(len(at), np.nan)
    lo = np.searchsorted(times, at - width / 2, side="left")
    hi = np.searchsorted(times, at + width / 2, side="left")
    nearest = np.clip(np.searchsorted(times, at), 0, len(times) - 1)
    lo, hi = np.where(hi > lo, lo, nearest), np.where(hi > lo, hi, nearest + 1)
    csum = np.concatenate([[0.0], np.cumsum(level_db)])
    return (csum[hi] - csum[lo]) / (hi - lo)


def agreement(mouth: np.ndarray, energy_db: np.ndarray) -> float:
    """How much the mouth opens with the sound: mean((m - mean m) * z(e)), i.e. Pearson r times the std of m.

    ``e`` is floored at the loud level minus :data:`ENERGY_RANGE_DB` and standardised; ``m`` stays in blendshape
    units, so a mouth that does not move scores ~0 however its noise happens to correlate (a still face's
    jawOpen varies by ~0.001 and its r is anywhere in [-0.6, 0.4] over 3 s; a talking mouth's std is 0.04-0.14).
    NaN when a signal is missing or the audio is constant.
    """
    ok = np.isfinite(mouth) & np.isfinite(energy_db)
    m, e = mouth[ok], energy_db[ok]
    if len(m) < MIN_FRAMES:
        return float("nan")
    e = np.maximum(e, np.percentile(e, 95) - ENERGY_RANGE_DB)
    if not e.std() > 0:
        return float("nan")
    return float(np.mean((m - m.mean()) * (e - e.mean()) / e.std()))


def _words_mask(words: pd.DataFrame | None, at: np.ndarray) -> np.ndarray | None:
    if words is None:
        return None
    inside = np.zeros(len(at), bool)
    for start, end in zip(words["start"].to_numpy(float), words["end"].to_numpy(float)):
        inside |= (at >= start) & (at <= end)
    return inside


def speaker_scores(store: FeatureStore | str, segments: pd.DataFrame, *, language: Any = None) -> pd.DataFrame:
    """Every face track of every segment with its score: what :func:`choose_faces` chooses from.

    One row per (segment, face id seen in its window), segments in order, faces by id: video_id, segment_id,
    face_id, face_share, speaker_score (the columns of :func:`choose_faces`, whose arguments these are); a segment
    without a face has no row.
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    if isinstance(language, pa.Table):
        language = language.to_pandas()
    videos: dict[str, tuple] = {}
    out = []
    for seg in segments.itertuples(index=False):
        if seg.video_id not in videos:
            videos[seg.video_id] = _video_signals(store, seg.video_id, language)
        times, ids, mouth, energy, inside = videos[seg.video_id]
        window = _window(times, float(seg.start), None if pd.isna(seg.end) else float(seg.end))
        level = energy[window].copy()
        if inside is not None and np.isfinite(level).any():
            level[~inside[window]] = np.nanmin(level)
        n_times = max(len(np.unique(times[window])), 1)
        for face in np.unique(ids[window][ids[window] >= 0]):
            rows = ids[window] == face
            out.append((seg.video_id, seg.segment_id, int(face), len(np.unique(times[window][rows])) / n_times,
                        agreement(mouth[window][rows], level[rows])))
    return pd.DataFrame(out, columns=list(COLUMNS)).astype({"face_id": np.int64, "face_share": np.float64,
                                                            "speaker_score": np.float64})


def choose_faces(store: FeatureStore | str, segments: pd.DataFrame, *, language: Any = None) -> pd.DataFrame:
    """The active speaker's face of each segment, by mouth-audio agreement.

    Args:
        store: the feature store (or its path) with the segments' visual and acoustic streams.
        segments: columns video_id, segment_id, start, end (end None/NaN: to the end of the video).
        language: optional words (a table or DataFrame with video_id, start, end, such as
            ``store.read_stream("language")``); when given, audio energy outside every word counts as silence, so
            noise between words does not vote.

    Returns:
        One row per segment, in order: video_id, segment_id, face_id (int; -1 when no face was found in the
        window), face_share (share of the window's sampled frame times at which that face was found; 0 for -1),
        speaker_score (:func:`agreement` of its mouth with the audio energy; NaN without audio, without a face
        or with fewer than ``MIN_FRAMES`` frames). The face with the highest score wins; faces without a score
        lose to faces with one, ties go to the larger face_share, then the lower id.
    """
    scores = speaker_scores(store, segments, language=language)
    scores["_scored"] = scores["speaker_score"].notna()
    ranked = scores.sort_values(["_scored", "speaker_score", "face_share", "face_id"],
                                ascending=[False, False, False, True], na_position="last", kind="stable")
    best = ranked.drop_duplicates(["video_id", "segment_id"]).set_index(["video_id", "segment_id"])
    out = segments[["video_id", "segment_id"]].reset_index(drop=True).join(
        best[["face_id", "face_share", "speaker_score"]], on=["video_id", "segment_id"])
    out["face_id"] = out["face_id"].fillna(-1).astype(np.int64)
    out["face_share"] = out["face_share"].fillna(0.0)
    return out


def _video_signals(store: FeatureStore, video_id: str, language: pd.DataFrame | None) -> tuple:
    """One video's visual row times, face ids, mouth opening, audio level at those times and (with words) whether
    a word covers each time."""
    visual = store.read_stream("visual", [video_id])
    if visual.num_rows == 0:
        return np.zeros(0), np.zeros(0, np.int32), np.zeros(0), np.zeros(0), None
    meta = store.stream_metadata("visual", video_id)
    times = visual.column("time").to_numpy().astype(np.float64)
    distinct = np.unique(times)
    width = json.loads(meta.get("frame_shift") or "null") or \
        (float(np.median(np.diff(distinct))) if len(distinct) > 1 else 0.1)
    energy = audio_energy(*_acoustic_level(store, video_id), times, width)
    words = None if language is None else language[language["video_id"].astype(str) == str(video_id)]
    return times, face_ids(visual), mouth_opening(visual, meta), energy, _words_mask(words, times)


def _acoustic_level(store: FeatureStore, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Acoustic frame times and level in dB (``rms_db``, else ``mfcc_00``, a log energy); empty without one."""
    table = store.read_stream("acoustic", [video_id])
    if table.num_rows == 0:
        return np.zeros(0), np.zeros(0)
    names = json.loads(store.stream_metadata("acoustic", video_id).get("feature_names", "[]"))
    column = next((names.index(n) for n in ("rms_db", "mfcc_00") if n in names), None)
    if column is None:
        return np.zeros(0), np.zeros(0)
    times = table.column("time").to_numpy().astype(np.float64)
    order = np.argsort(times, kind="stable")
    return times[order], feature_matrix(table)[order, column].astype(np.float64)
