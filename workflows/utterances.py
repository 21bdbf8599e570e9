"""What `mcr predict` annotates: utterances of detected speech, faces on screen without speech, and what each
row is made of (speech share, ASR confidence, the face seen).

Speech is found by a voice activity detector *and* whisper's words (:func:`pipeline.segmenting.utterance_spans`),
so a stretch whisper did not transcribe still gets a row (without words), and pauses split clips whisper ran
together. The detector is Silero VAD (the ``silero-vad`` wheel: its weights ship inside it, it runs offline on
torch, which the model needs anyway). It was chosen by measurement, on the 6 CREMA-D clips joined with 1-s gaps
(18.9 s; clips found / regions / seconds of speech outside the clips), against an energy + voicing detector on
the acoustic stream (:func:`pipeline.segmenting.voiced_speech`) and WebRTC's (webrtcvad-wheels, mode 3):

=====================  ==============  ====================  ==========  ===========================
audio                  silero-vad      acoustic voicing      webrtc 3    whisper's words alone
=====================  ==============  ====================  ==========  ===========================
clean                  6/6, 6, 0 s     6/6, 7, 0.8 s         6/6, 6, 0   5/6 (one clip has no word)
+ white noise 20 dB    6/6, 6, 0 s     6/6, 6, 0 s           6/6, 7, 0
+ white noise 10 dB    6/6, 6, 0 s     5/6                   6/6, 6, 0
+ white noise 5 dB     6/6, 6, 0 s     4/6                   6/6, 7, 0
+ chord at -10 dB      6/6, 6, 0 s     5/6                   6/6, 7, 0
chord alone (no voice) 0 s             19 s (all of it)      0.09 s
=====================  ==============  ====================  ==========  ===========================

Silero alone found every clip in every condition, merged none and called no music or noise speech; it costs
~0.5 s per 19 s of audio on one CPU thread (~40x real time) plus decoding the audio once more. When the
``silero-vad`` package is missing, the acoustic stream's voicing is used instead (and the table's metadata says
so).
"""
from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd

from pipeline.manifest import Segment, VideoSource
from pipeline.segmenting import (MAX_UTTERANCE, MIN_PAUSE, Interval, even_parts, merge_intervals, overlap_seconds,
                                 silent_spans, utterance_spans, voiced_speech)
from pipeline.store import FeatureStore, feature_matrix

VAD_SILERO, VAD_VOICING = "silero-vad", "acoustic voicing"
SILENT_FACE_SECONDS = 2.0
"""A stretch without speech but with a face on screen this long or longer gets its own row (no language)."""
FACE_GAP = 0.5
"""Seconds a face may be missed (a blink of the detector, a turned head) inside one on-screen stretch."""


@functools.lru_cache(maxsize=1)
def _silero_model():
    import warnings

    from silero_vad import load_silero_vad

    with warnings.catch_warnings():  # torch 2.10+: "torch.jit.load is deprecated", about silero's own loader
        warnings.simplefilter("ignore", FutureWarning)
        return load_silero_vad()  # the TorchScript model inside the wheel: nothing is downloaded


def vad_name() -> str:
    """The voice activity detector this installation uses."""
    try:
        import silero_vad  # noqa: F401
    except ImportError:
        return VAD_VOICING
    return VAD_SILERO


def silero_speech(audio: np.ndarray, sample_rate: int = 16000) -> list[Interval]:
    """Speech (start, end) seconds in ``audio`` (mono float, 16 kHz) by Silero VAD, its default settings
    (threshold 0.5, speech >= 250 ms, pauses >= 100 ms, 30 ms padding)."""
    import torch
    from silero_vad import get_speech_timestamps

    if len(audio) < 512:
        return []
    with torch.no_grad():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio, np.float32)), _silero_model(),
                                       sampling_rate=sample_rate)
    return [(d["start"] / sample_rate, d["end"] / sample_rate) for d in stamps]


def _words(store: FeatureStore, video_id: str, columns: list[str]) -> pd.DataFrame:
    """One video's words (the given columns; none when it has no language stream)."""
    table = store.read_stream("language", [video_id])
    if table.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    return table.select(columns).to_pandas()


def _acoustic(store: FeatureStore, video_id: str, feature: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Frame times, one named feature of the acoustic stream and its hop; empty when the stream lacks it."""
    table = store.read_stream("acoustic", [video_id])
    if table.num_rows == 0:
        return np.zeros(0), np.zeros(0), 0.01
    meta = store.stream_metadata("acoustic", video_id)
    names = json.loads(meta.get("feature_names", "[]"))
    if feature not in names:
        return np.zeros(0), np.zeros(0), 0.01
    times = table.column("time").to_numpy().astype(np.float64)
    order = np.argsort(times, kind="stable")
    hop = json.loads(meta.get("frame_shift") or "null") or 0.01
    return times[order], feature_matrix(table)[order, names.index(feature)].astype(np.float64), hop


def level_dips(store: FeatureStore, video_id: str, speech: list[Interval], *, min_depth: float = 10.0
               ) -> list[tuple[float, float]]:
    """Dips of the sound level inside ``speech`` (local minima of ``rms_db`` over 50 ms, at least ``min_depth`` dB
    below the loudest frame within 0.3 s): (time, depth / 100) places to split speech whisper gave no words for,
    a 20-dB dip weighing as a 0.2-s pause."""
    times, level, hop = _acoustic(store, video_id, "rms_db")
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


def _voicing_speech(store: FeatureStore, video_id: str) -> list[Interval]:
    times, voiced, hop = _acoustic(store, video_id, "voiced")
    return voiced_speech(times, voiced > 0.5, hop=hop)


def detect_speech(store: FeatureStore, source: VideoSource, vad: str | None = None) -> list[Interval]:
    """Speech in ``source`` (seconds of the video): Silero VAD on its audio, else the stored stream's voicing."""
    if (vad or vad_name()) == VAD_SILERO:
        from extractors.media import decode
        from pipeline.errors import StageError

        try:
            media = decode(source.path, fps=1.0, max_side=16)  # only the audio is used
        except (StageError, OSError):
            return _voicing_speech(store, source.video_id)
        return [(media.start + s, media.start + e) for s, e in silero_speech(media.audio, media.sample_rate)]
    return _voicing_speech(store, source.video_id)


def _face_frames(store: FeatureStore, video_id: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Distinct visual frame times, whether any face was found at each, and the frame shift."""
    table = store.read_stream("visual", [video_id])
    if table.num_rows == 0 or "face" not in table.column_names:
        return np.zeros(0), np.zeros(0, bool), 0.1
    frame = table.select(["time", "face"]).to_pandas().groupby("time", sort=True)["face"].any()
    times = frame.index.to_numpy(np.float64)
    shift = float(np.median(np.diff(times))) if len(times) > 1 else 0.1
    return times, frame.to_numpy(bool), shift


def face_on_screen(store: FeatureStore, video_id: str) -> list[Interval]:
    """Stretches with a face found, gaps under :data:`FACE_GAP` bridged."""
    times, face, shift = _face_frames(store, video_id)
    return merge_intervals(((t, t + shift) for t in times[face]), FACE_GAP)


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    return [(max(s, t), min(e, u)) for s, e in a for t, u in b if min(e, u) > max(s, t)]


def plan_video(store: FeatureStore, source: VideoSource, duration: float, *, max_len: float = MAX_UTTERANCE,
               min_pause: float = MIN_PAUSE, vad: str | None = None, silent_faces: bool = True
               ) -> tuple[list[Segment], list[Interval]]:
    """The rows of one video without manifest segments, and its speech (detected or transcribed).

    Rows: every utterance; with ``silent_faces``, every stretch of at least :data:`SILENT_FACE_SECONDS` without
    speech but with a face on screen (cut into parts of at most ``max_len``); a video with neither is one row.
    """
    words = _words(store, source.video_id, ["utterance", "start", "end"]).to_dict("records")
    speech = merge_intervals([*detect_speech(store, source, vad), *((w["start"], w["end"]) for w in words)])
    long = [(s, e) for s, e in merge_intervals(speech, min_pause) if e - s > max_len]
    spans = utterance_spans(speech, words, max_len=max_len, min_pause=min_pause,
                            dips=level_dips(store, source.video_id, long))
    if silent_faces:
        quiet = silent_spans(spans, duration, min_len=SILENT_FACE_SECONDS)
        for s, e in _intersect(quiet, face_on_screen(store, source.video_id)):
            if e - s >= SILENT_FACE_SECONDS:
                spans += even_parts(s, e, max_len)
    spans = sorted(spans) or [(0.0, round(duration, 3))]
    vid = source.video_id
    return [Segment(vid, f"{vid}_{k:04d}", s, e) for k, (s, e) in enumerate(spans)], speech


def coverage(speech: dict[str, list[Interval]], segments: pd.DataFrame) -> dict[str, float]:
    """Seconds of speech (all videos) and how many of them lie in a row."""
    total = covered = 0.0
    for vid, spans in speech.items():
        rows = segments[segments["video_id"] == vid]
        ends = rows["end"].astype(float).fillna(np.inf)
        total += sum(e - s for s, e in spans)
        covered += overlap_seconds(spans, list(zip(rows["start"].astype(float), ends)))
    return {"speech_seconds": round(total, 3), "covered_seconds": round(covered, 3),
            "share": round(covered / total, 4) if total > 0 else 1.0}


def _fallback_faces(store: FeatureStore, segments: pd.DataFrame) -> pd.DataFrame:
    """face_id 0 when a segment has a frame with a face, else -1; face_share: its frames with a face."""
    out, cache = [], {}
    for seg in segments.itertuples(index=False):
        if seg.video_id not in cache:
            cache[seg.video_id] = _face_frames(store, seg.video_id)[:2]
        times, face = cache[seg.video_id]
        end = np.inf if pd.isna(seg.end) else float(seg.end)
        inside = (times >= float(seg.start)) & (times < end)
        share = float(face[inside].mean()) if inside.any() else 0.0
        out.append((seg.video_id, seg.segment_id, 0 if share > 0 else -1, share))
    return pd.DataFrame(out, columns=["video_id", "segment_id", "face_id", "face_share"])


def faces_of(store: FeatureStore, segments: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per segment the face to serve (``face_id``, -1: none) and ``face_share``, and how they were chosen.

    With ``pipeline.speaker.choose_faces`` (multi-face tracking), the active speaker; otherwise the single
    face of the stream.
    """
    cols = ["video_id", "segment_id", "face_id", "face_share"]
    if segments.empty:
        return pd.DataFrame(columns=cols), "none"
    try:
        from pipeline.speaker import choose_faces
    except ImportError:
        return _fallback_faces(store, segments), "single face"
    words = store.read_stream("language", sorted(set(segments["video_id"])))
    words = words.select(["video_id", "start", "end"]) if "start" in words.column_names else None
    return choose_faces(store, segments, language=words)[cols], "active speaker (pipeline.speaker)"


def describe(store: FeatureStore, segments: pd.DataFrame, speech: dict[str, list[Interval]]) -> pd.DataFrame:
    """``asr_confidence`` (mean probability of the words whose midpoint lies in the row; NaN without words),
    ``n_words`` and ``speech_share`` (the share of the row that is speech) of each segment, in order."""
    out, cache = [], {}
    for seg in segments.itertuples(index=False):
        vid = seg.video_id
        if vid not in cache:
            w = _words(store, vid, ["start", "end", "probability"])
            cache[vid] = ((w["start"].to_numpy(float) + w["end"].to_numpy(float)) / 2, w["probability"].to_numpy(float))
        mids, probs = cache[vid]
        start, end = float(seg.start), (np.inf if pd.isna(seg.end) else float(seg.end))
        inside = (mids >= start) & (mids < end)
        length = (end - start) if np.isfinite(end) else np.nan
        spoken = overlap_seconds(speech.get(vid, []), [(start, end)])
        out.append((float(probs[inside].mean()) if inside.any() else np.nan, int(inside.sum()),
                    round(spoken / length, 4) if length and length > 0 else np.nan))
    return pd.DataFrame(out, columns=["asr_confidence", "n_words", "speech_share"], index=segments.index)
