"""The rows `mcr predict` annotates: utterances of detected speech, faces on screen without speech, manifest segments
or fixed windows; and what each row is made of (speech share, ASR confidence, the face seen).

Speech is found by a voice activity detector *and* whisper's words (:func:`.segments.utterance_spans`), so a stretch
whisper did not transcribe still gets a row (without words), and a pause of ``min_pause`` between two words always
starts a new row. Each video's speech and loudness come from its voice stream (:func:`.speech.listen`), computed
during extraction: nothing is decoded here; the loudness also serves the choice of the speaking face (:mod:`.faces`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.manifest import Segment, VideoSource
from pipeline.store import FeatureStore
from pipeline.views import extracted_videos, face_frames, video_words, words_inside
from workflows.annotate.segments import (MAX_UTTERANCE, MIN_PAUSE, Interval, clip_intervals, even_parts,
                                         merge_intervals, overlap_seconds, silent_spans, utterance_spans,
                                         window_segments)
from workflows.annotate.speech import Heard, listen

SILENT_FACE_SECONDS = 2.0
"""A stretch without speech but with a face on screen this long or longer gets its own row (no language)."""
FACE_GAP = 0.5
"""Seconds a face may be missed (a blink of the detector, a turned head) inside one on-screen stretch."""


@dataclass(frozen=True)
class RowConfig:
    """How footage is cut into rows."""

    max_len: float = MAX_UTTERANCE
    """Longest row, seconds: a longer utterance is split at its longest pause."""
    min_pause: float = MIN_PAUSE
    """A pause this long (seconds) between two words starts a new row; shorter ones are bridged."""
    window: float | None = None
    """Cut videos without manifest segments into windows of this many seconds instead of utterances."""
    silent_faces: bool = True
    """Give a row to every stretch of :data:`SILENT_FACE_SECONDS` or more with a face on screen and no speech."""


@dataclass
class Plan:
    """The rows of a set of videos: ``segments`` (video_id, video_path, segment_id, start, end, split) and, per
    video, what the detector heard in its audio (:class:`.speech.Heard`) and its ``speech`` (the detector's and
    whisper's words together, inside the video: what coverage is measured against)."""

    segments: pd.DataFrame
    heard: dict[str, Heard] = field(default_factory=dict)
    speech: dict[str, list[Interval]] = field(default_factory=dict)

    @property
    def voices(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each video's loudness (times, level_db), for :func:`.faces.choose_faces`."""
        return {vid: (h.times, h.level_db) for vid, h in self.heard.items()}

    @property
    def detected(self) -> dict[str, list[Interval]]:
        """Each video's speech as the detector heard it (without whisper's word timings)."""
        return {vid: h.speech for vid, h in self.heard.items()}

    @property
    def detector(self) -> str | None:
        """The voice activity detector(s) that found the speech, comma-separated (None without a voice stream)."""
        return ", ".join(sorted({h.detector for h in self.heard.values() if h.detector})) or None


def level_dips(heard: Heard, speech: list[Interval], *, min_depth: float = 10.0) -> list[tuple[float, float]]:
    """Dips of the voice's level inside ``speech`` (local minima of ``heard.level_db`` over 50 ms, at least
    ``min_depth`` dB below the loudest frame within 0.3 s): (time, depth / 100) places to split speech whisper gave
    no words for, a 20-dB dip weighing as a 0.2-s pause."""
    times, level, hop = heard.times, heard.level_db, heard.frame_shift
    if len(times) < 3 or not speech:
        return []
    smooth = np.convolve(level, np.ones(5) / 5, mode="same")
    reach = max(1, int(round(0.3 / hop)))
    padded = np.pad(smooth, reach, constant_values=-np.inf)
    peak = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)
    depth = peak - smooth
    minima = np.flatnonzero((smooth[1:-1] < smooth[:-2]) & (smooth[1:-1] <= smooth[2:])) + 1
    inside = np.zeros(len(times), bool)
    for s, e in speech:
        inside |= (times >= s) & (times < e)
    return [(float(times[i]), float(depth[i]) / 100) for i in minima if inside[i] and depth[i] >= min_depth]


def face_on_screen(store: FeatureStore, video_id: str) -> list[Interval]:
    """Stretches with a face found, gaps under :data:`FACE_GAP` bridged."""
    frames = face_frames(store, video_id)
    return merge_intervals(((t, t + frames.frame_shift) for t in np.unique(frames.times[frames.face_ids >= 0])),
                           FACE_GAP)


def plan_video(store: FeatureStore, source: VideoSource, duration: float, heard: Heard,
               config: RowConfig = RowConfig()) -> tuple[list[Segment], list[Interval]]:
    """The rows of one video without manifest segments, and its speech (detected or transcribed), inside
    [0, duration].

    Rows: every utterance; with ``silent_faces``, every stretch of at least :data:`SILENT_FACE_SECONDS` without
    speech but with a face on screen (cut into parts of at most ``max_len``); a video with neither is one row.
    """
    words = video_words(store, source.video_id, ["utterance", "start", "end"]).to_dict("records")
    speech = clip_intervals([*heard.speech, *((w["start"], w["end"]) for w in words)], duration)
    long = [(s, e) for s, e in merge_intervals(speech, config.min_pause) if e - s > config.max_len]
    spans = utterance_spans(speech, words, max_len=config.max_len, min_pause=config.min_pause,
                            dips=level_dips(heard, long), duration=duration)
    if config.silent_faces:
        quiet = silent_spans(spans, duration, min_len=SILENT_FACE_SECONDS)
        for s, e in _intersect(quiet, face_on_screen(store, source.video_id)):
            if e - s >= SILENT_FACE_SECONDS:
                spans += even_parts(s, e, config.max_len)
    end = math.floor(duration * 1000) / 1000  # rows are rounded to the millisecond, never past the end
    spans = [(s, min(e, end)) for s, e in sorted(spans)] or [(0.0, end)]
    vid = source.video_id
    return [Segment(vid, f"{vid}_{k:04d}", s, e) for k, (s, e) in enumerate(spans) if e > s], speech


def plan_rows(store: FeatureStore, sources: list[VideoSource], config: RowConfig = RowConfig()) -> Plan:
    """The rows of the successfully extracted videos of ``sources``: the manifest's segments when it names them,
    else windows (``config.window``), else utterances (:func:`plan_video`), cut by each video's voice stream."""
    durations = extracted_videos(store)
    rows: list[tuple[Segment, str]] = []
    plan = Plan(pd.DataFrame())
    for source in sources:
        if source.video_id not in durations:
            continue
        duration = durations[source.video_id]
        path = os.path.abspath(source.path) if "://" not in source.path else source.path
        heard = listen(store, source.video_id)
        if source.segments or config.window:
            words = video_words(store, source.video_id, ["start", "end"])
            speech = clip_intervals([*heard.speech, *zip(words["start"], words["end"])], duration)
            segs = list(source.segments) or window_segments(source.video_id, duration, config.window)
        else:
            segs, speech = plan_video(store, source, duration, heard, config)
        plan.heard[source.video_id], plan.speech[source.video_id] = heard, speech
        rows += [(s, path) for s in segs]
    plan.segments = pd.DataFrame(
        [{"video_id": s.video_id, "video_path": p, "segment_id": s.segment_id, "start": s.start, "end": s.end,
          "split": None} for s, p in rows], columns=["video_id", "video_path", "segment_id", "start", "end", "split"])
    return plan


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    return [(max(s, t), min(e, u)) for s, e in a for t, u in b if min(e, u) > max(s, t)]


def coverage(speech: dict[str, list[Interval]], segments: pd.DataFrame) -> dict[str, float]:
    """Seconds of detected speech (all videos), how many of them lie in a row, and how many in none."""
    total = covered = 0.0
    for vid, spans in speech.items():
        rows = segments[segments["video_id"] == vid]
        ends = rows["end"].astype(float).fillna(np.inf)
        total += sum(e - s for s, e in spans)
        covered += overlap_seconds(spans, list(zip(rows["start"].astype(float), ends)))
    return {"speech_seconds": round(total, 3), "covered_seconds": round(covered, 3),
            "uncovered_seconds": round(max(total - covered, 0.0), 3),
            "share": round(covered / total, 4) if total > 0 else 1.0}


def describe(store: FeatureStore, segments: pd.DataFrame, speech: dict[str, list[Interval]]) -> pd.DataFrame:
    """``asr_confidence`` (mean probability of the row's words; NaN without words), ``n_words`` and ``speech_share``
    (the share of the row that is speech) of each segment, in order."""
    out, cache = [], {}
    for seg in segments.itertuples(index=False):
        vid = seg.video_id
        if vid not in cache:
            cache[vid] = video_words(store, vid, ["start", "end", "probability"])
        w = cache[vid]
        start, end = float(seg.start), (np.inf if pd.isna(seg.end) else float(seg.end))
        inside = words_inside(w["start"].to_numpy(float), w["end"].to_numpy(float), start, end)
        probs = w["probability"].to_numpy(float) if "probability" in w else np.full(len(w), np.nan)
        length = (end - start) if np.isfinite(end) else np.nan
        spoken = overlap_seconds(speech.get(vid, []), [(start, end)])
        out.append((float(probs[inside].mean()) if inside.any() else np.nan, int(inside.sum()),
                    round(spoken / length, 4) if length and length > 0 else np.nan))
    return pd.DataFrame(out, columns=["asr_confidence", "n_words", "speech_share"], index=segments.index)
