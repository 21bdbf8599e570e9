"""The active speaker of each row: the face whose mouth opens and closes with the voice.

A visual stream extracted with ``max_faces > 1`` holds several face tracks (``face_id``; `mcr predict` looks for up
to 4 by default). For each row, :func:`choose_faces` correlates every track's mouth opening (:func:`mouth_opening`)
with the voice's loudness envelope at the same instants, over the detector's speech in the row widened by
``context`` seconds on each side (a listener's mouth that moves in the pauses around the remark counts against it;
whisper's word timings, which run into those pauses, are left out), the envelope shifted by up to
``max_lag`` seconds (sound and picture of a recording are rarely exactly in step), and keeps the best. The face's
position plays no part. Each row then says which face (``face_id``), where it is (``face_box``), how clear the choice
was (``speaker_confidence``: the lead of the best score over the runner-up) and, when that lead is under
``uncertain_margin``, ``speaker_uncertain``.

Measured on two-speaker compositions of different CREMA-D clips (``tests/workflows/annotate/test_faces.py``; both
mouths moving, the silent face's clip 0.6 s before or after the voiced one): docs/predictions.md, "The face".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.store import FeatureStore
from pipeline.views import FaceFrames, face_frames, rows_in_window, voice_series

COLUMNS = ("video_id", "segment_id", "face_id", "face_box", "face_share", "speaker_score", "speaker_confidence",
           "speaker_uncertain")


@dataclass(frozen=True)
class SpeakerConfig:
    """How the active speaker is chosen."""

    context: float = 0.5
    """Seconds before and after a row that are scored with it."""
    max_lag: float = 0.1
    """Largest shift, seconds, of the voice against the picture that is searched (in steps of one frame)."""
    uncertain_margin: float = 0.1
    """A lead of the best face's correlation over the runner-up's below this marks the row ``speaker_uncertain``."""
    min_frames: int = 5
    """A face seen in fewer of the scored frames gets no score (it can still win when no face has one)."""
    still_mouth: float = 0.02
    """Standard deviation of mouth opening under which a mouth counts as still: its correlation is shrunk in
    proportion (a still face's noise correlates with anything over a second or two)."""
    energy_range_db: float = 40.0
    """Voice levels are floored this far below the scored stretch's loud level (95th percentile): digital silence
    at -100 dB would otherwise dominate the envelope."""


def mouth_opening(frames: FaceFrames) -> np.ndarray:
    """(R,) how far apart the lips are on each visual row, about 0..1 (NaN when the stream has no mouth measure).

    MediaPipe: ``jawOpen - mouthClose`` (ARKit's mouthClose closes the lips while the jaw is open, so the
    difference follows the lips). Other backends (py-feat): the mean of AU25 (lips part) and AU26 (jaw drop),
    whichever its ``features`` has.
    """
    names = frames.blendshape_names
    if frames.blendshapes is not None and "jawOpen" in names and frames.blendshapes.any():
        close = frames.blendshapes[:, names.index("mouthClose")] if "mouthClose" in names else 0.0
        return (frames.blendshapes[:, names.index("jawOpen")] - close).astype(np.float64)
    mouth = [frames.feature_names.index(au) for au in ("AU25", "AU26") if au in frames.feature_names]
    if not mouth or frames.features is None:
        return np.full(len(frames.times), np.nan)
    return frames.features[:, mouth].mean(axis=1).astype(np.float64)


def voice_level(times: np.ndarray, level_db: np.ndarray, at: np.ndarray, width: float) -> np.ndarray:
    """Mean level of the envelope within ``width / 2`` of each visual time ``at`` (nearest value when none).

    times (A,) sorted, level_db (A,), at (T,) -> (T,) dB; NaN without an envelope.
    """
    if len(times) == 0:
        return np.full(len(at), np.nan)
    lo = np.searchsorted(times, at - width / 2, side="left")
    hi = np.searchsorted(times, at + width / 2, side="left")
    nearest = np.clip(np.searchsorted(times, at), 0, len(times) - 1)
    lo, hi = np.where(hi > lo, lo, nearest), np.where(hi > lo, hi, nearest + 1)
    csum = np.concatenate([[0.0], np.cumsum(level_db)])
    return (csum[hi] - csum[lo]) / (hi - lo)


def synchrony(mouth: np.ndarray, envelopes: list[np.ndarray], config: SpeakerConfig = SpeakerConfig()) -> float:
    """How well a mouth follows the voice: the best Pearson r of ``mouth`` (T,) with any of ``envelopes`` (each
    (T,) dB, the voice at one lag), shrunk for a still mouth; NaN with fewer than ``min_frames`` finite frames."""
    best = np.nan
    for energy in envelopes:
        ok = np.isfinite(mouth) & np.isfinite(energy)
        m, e = mouth[ok], energy[ok]
        if len(m) < config.min_frames:
            continue
        e = np.maximum(e, np.percentile(e, 95) - config.energy_range_db)
        if not (e.std() > 0 and m.std() > 0):
            continue
        r = float(np.corrcoef(m, e)[0, 1]) * min(1.0, float(m.std()) / config.still_mouth)
        best = r if not np.isfinite(best) else max(best, r)
    return best


def _loudness(store: FeatureStore, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    voice = voice_series(store, video_id)
    return voice.times, voice.level_db


def _mean_box(boxes: np.ndarray) -> list[float]:
    """(R, 4) x0 y0 x1 y1 -> the mean box as [x, y, w, h] (NaN without a finite box)."""
    if not np.isfinite(boxes).any():
        return [float("nan")] * 4
    x0, y0, x1, y1 = np.nanmean(boxes, axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _scored_window(seg, speech: list | None, context: float) -> tuple[float, float | None]:
    """The stretch of a segment whose frames are scored: the detector's speech inside it (whisper's word timings
    run into the pauses around a remark), else the whole segment; widened by ``context`` each side."""
    start, end = float(seg.start), (np.inf if pd.isna(seg.end) else float(seg.end))
    inside = [(max(s, start), min(e, end)) for s, e in speech or () if e > start and s < end]
    if inside:
        start, end = inside[0][0], inside[-1][1]
    return start - context, None if np.isinf(end) else end + context


def speaker_scores(store: FeatureStore, segments: pd.DataFrame, *, voices: dict | None = None,
                   speech: dict | None = None, config: SpeakerConfig = SpeakerConfig()) -> pd.DataFrame:
    """Every face of every segment with its score: what :func:`choose_faces` chooses from.

    One row per (segment, face id seen in its window), segments in order, faces by id: video_id, segment_id,
    face_id, face_box (mean x, y, w, h in the window, fractions of the frame; NaN without boxes), face_share,
    speaker_score; a segment without a face has no row. ``voices``: video id -> (times, level_db), the voice's
    envelope (default: the voice stream's, :func:`pipeline.views.voice_series`); ``speech``: video id -> the
    detector's speech (start, end) seconds, sorted, which narrows the scored stretch (:func:`_scored_window`).
    """
    videos: dict[str, tuple] = {}
    out = []
    for seg in segments.itertuples(index=False):
        vid = seg.video_id
        if vid not in videos:
            frames = face_frames(store, vid)
            voice = (voices or {}).get(vid) or _loudness(store, vid)
            videos[vid] = (frames, mouth_opening(frames), voice)
        frames, mouth, (v_times, v_level) = videos[vid]
        start, end = float(seg.start), (None if pd.isna(seg.end) else float(seg.end))
        own = rows_in_window(frames.times, start, end)
        scored = rows_in_window(frames.times, *_scored_window(seg, (speech or {}).get(vid), config.context))
        grid = np.unique(frames.times[scored])
        lags = frames.frame_shift * np.arange(-round(config.max_lag / frames.frame_shift),
                                              round(config.max_lag / frames.frame_shift) + 1)
        envelopes = [voice_level(v_times, v_level, grid + lag, frames.frame_shift) for lag in lags]
        n_times = max(len(np.unique(frames.times[own])), 1)
        for face in np.unique(frames.face_ids[own & (frames.face_ids >= 0)]):
            rows = scored & (frames.face_ids == face)
            at = np.searchsorted(grid, frames.times[rows])
            m = np.full(len(grid), np.nan)
            m[at] = mouth[rows]
            mine = own & (frames.face_ids == face)
            out.append((vid, seg.segment_id, int(face), _mean_box(frames.boxes[mine]),
                        len(np.unique(frames.times[mine])) / n_times, synchrony(m, envelopes, config)))
    return pd.DataFrame(out, columns=list(COLUMNS[:6])).astype(
        {"face_id": np.int64, "face_share": np.float64, "speaker_score": np.float64})


def choose_faces(store: FeatureStore, segments: pd.DataFrame, *, voices: dict | None = None,
                 speech: dict | None = None, config: SpeakerConfig = SpeakerConfig()) -> pd.DataFrame:
    """The active speaker's face of each segment, by mouth-voice synchrony.

    Args:
        store: the feature store with the segments' visual stream (and voice stream, without ``voices``).
        segments: columns video_id, segment_id, start, end (end None/NaN: to the end of the video).
        voices: video id -> (times (A,), level_db (A,)), the voice's loudness (:func:`.speech.listen`).
        speech: video id -> the detector's speech intervals, sorted: a segment is scored over the speech in it.

    Returns:
        One row per segment, in order (:data:`COLUMNS`): face_id (-1 when no face was seen), face_box (x, y, w, h,
        fractions of the frame; None without a face or without stored boxes), face_share (share of the window's
        frame times with that face), speaker_score (its :func:`synchrony`; NaN without a voice or frames),
        speaker_confidence (0..1: the best score's lead over the runner-up; with one face, its score floored at 0;
        NaN without a score), speaker_uncertain (two faces or more, and a lead under ``uncertain_margin`` or no
        score). The best score wins; faces without one lose to faces with one, ties go to the larger face_share,
        then the lower id.
    """
    scores = speaker_scores(store, segments, voices=voices, speech=speech, config=config)
    scores["_scored"] = scores["speaker_score"].notna()
    ranked = scores.sort_values(["_scored", "speaker_score", "face_share", "face_id"],
                                ascending=[False, False, False, True], na_position="last", kind="stable")
    rows = []
    for (vid, sid), faces in ranked.groupby(["video_id", "segment_id"], sort=False):
        best, scored = faces.iloc[0], faces["speaker_score"].dropna().to_numpy()
        lead = scored[0] - scored[1] if len(scored) > 1 else (max(scored[0], 0.0) if len(scored) else np.nan)
        uncertain = len(faces) > 1 and not (len(scored) > 1 and lead >= config.uncertain_margin)
        box = best["face_box"] if np.isfinite(best["face_box"]).all() else None
        rows.append((vid, sid, int(best["face_id"]), box, float(best["face_share"]), best["speaker_score"],
                     float(np.clip(lead, 0.0, 1.0)), bool(uncertain)))
    chosen = pd.DataFrame(rows, columns=list(COLUMNS)).set_index(["video_id", "segment_id"])
    out = segments[["video_id", "segment_id"]].reset_index(drop=True).join(chosen, on=["video_id", "segment_id"])
    out["face_id"] = out["face_id"].fillna(-1).astype(np.int64)
    out["face_share"] = out["face_share"].fillna(0.0)
    out["speaker_uncertain"] = out["speaker_uncertain"].fillna(False).astype(bool)
    out["face_box"] = [b if isinstance(b, list) else None for b in out["face_box"]]
    return out
