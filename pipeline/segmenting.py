"""Cut long footage into segments to annotate: on whisper's utterances, or in fixed windows."""
from __future__ import annotations

import math
from collections.abc import Sequence

from pipeline.manifest import Segment


def utterance_segments(video_id: str, words: Sequence[dict], duration: float, *,
                       max_len: float = 30.0) -> list[Segment]:
    """One segment per whisper utterance: from its first word's start to its last word's end.

    ``words`` are rows with ``utterance``, ``start`` and ``end``. Utterances longer than ``max_len`` seconds are
    split into equal parts. With no words at all (silence, no audio) the whole video is one segment.
    """
    by_utt: dict[int, list[dict]] = {}
    for w in words:
        by_utt.setdefault(int(w["utterance"]), []).append(w)
    spans = [(min(w["start"] for w in ws), max(w["end"] for w in ws)) for _, ws in sorted(by_utt.items())]
    if not spans:
        spans = [(0.0, duration)]
    segments = []
    for start, end in spans:
        parts = max(1, math.ceil((end - start) / max_len))
        step = (end - start) / parts
        for k in range(parts):
            s, e = start + k * step, start + (k + 1) * step
            segments.append(Segment(video_id, f"{video_id}_{len(segments):04d}", round(s, 3), round(e, 3)))
    return segments


def window_segments(video_id: str, duration: float, window: float) -> list[Segment]:
    """Back-to-back windows of ``window`` seconds; the last one ends at ``duration``."""
    if not window > 0:
        raise ValueError(f"the segment window must be a positive number of seconds, got {window}")
    n = max(1, math.ceil(duration / window - 1e-9))
    return [Segment(video_id, f"{video_id}_{k:04d}", round(k * window, 3), round(min((k + 1) * window, duration), 3))
            for k in range(n)]
