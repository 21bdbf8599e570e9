"""Cut footage into rows to annotate: utterances of detected speech (with whisper's words), or fixed windows.

Everything here is interval arithmetic on seconds of the video; finding the speech is :mod:`.speech`, reading the
store and planning a video's rows :mod:`.rows`. An utterance is a stretch of speech: what the voice activity
detector found together with the spans of whisper's words (so speech whisper missed, and words the detector missed,
both count), pauses shorter than ``min_pause`` bridged, and cut wherever two words are ``min_pause`` or more apart
(whatever the detector heard between them: noise in a pause is not a reason to merge two remarks). One longer than
``max_len`` is split at its longest pause between words (a whisper segment boundary counts a little extra), never
inside a word. Nothing lies outside [0, duration].
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pipeline.manifest import Segment
from pipeline.views import word_times

Interval = tuple[float, float]

MAX_UTTERANCE = 8.0
"""Seconds: a longer utterance is split (a row should be one remark, not a monologue)."""
MIN_PAUSE = 0.5
"""Seconds: speech separated by a shorter pause is one utterance."""
MIN_PART = 1.0
"""Seconds: no split leaves a part shorter than this when it can be avoided."""
SEGMENT_BONUS = 0.2
"""Seconds of pause a whisper segment boundary is worth when choosing where to split."""


def merge_intervals(intervals: Iterable[Interval], gap: float = 0.0) -> list[Interval]:
    """Sorted, non-overlapping intervals; those closer than ``gap`` seconds joined. Empty/invalid ones dropped."""
    out: list[list[float]] = []
    for s, e in sorted((float(s), float(e)) for s, e in intervals if e >= s and math.isfinite(s) and math.isfinite(e)):
        if out and (s <= out[-1][1] or s - out[-1][1] < gap):
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def total_seconds(intervals: Iterable[Interval]) -> float:
    """Seconds covered by ``intervals`` (overlaps counted once)."""
    return float(sum(e - s for s, e in merge_intervals(intervals)))


def overlap_seconds(a: Iterable[Interval], b: Iterable[Interval]) -> float:
    """Seconds covered by both ``a`` and ``b``."""
    a, b = merge_intervals(a), merge_intervals(b)
    total, j = 0.0, 0
    for s, e in a:
        while j < len(b) and b[j][1] <= s:
            j += 1
        k = j
        while k < len(b) and b[k][0] < e:
            total += max(0.0, min(e, b[k][1]) - max(s, b[k][0]))
            k += 1
    return float(total)


def _word_spans(words: Sequence[dict]) -> list[tuple[float, float, int]]:
    spans = []
    for w in words:
        s, e = float(w["start"]), float(w["end"])
        if math.isfinite(s) and math.isfinite(e):
            spans.append((s, max(s, e), int(w.get("utterance", 0) or 0)))
    return sorted(spans)


def _inside(words: list[tuple[float, float, int]], start: float, end: float) -> list[tuple[float, float, int]]:
    """The words of [start, end) (by :func:`pipeline.views.word_times`, the one rule)."""
    return [w for w, t in zip(words, word_times([w[0] for w in words], [w[1] for w in words]))
            if start <= t < end]


def _split_points(start: float, end: float, words: list[tuple[float, float, int]], speech: list[Interval],
                  dips: Sequence[tuple[float, float]] = ()) -> list[tuple[float, float]]:
    """Candidate cuts (position, pause seconds) inside [start, end]: gaps between words (plus a bonus at a
    whisper segment boundary), the detector's pauses and the ``dips`` (position, score) that no word crosses."""
    inside = _inside(words, start, end)
    cuts = []
    for (s0, e0, u0), (s1, _, u1) in zip(inside, inside[1:]):
        pause = max(0.0, s1 - e0)
        cuts.append(((e0 + s1) / 2 if pause > 0 else e0, pause + (SEGMENT_BONUS if u1 != u0 else 0.0)))
    parts = [(max(s, start), min(e, end)) for s, e in speech if e > start and s < end]
    quiet = [((e0 + s1) / 2, s1 - e0) for (_, e0), (s1, _) in zip(parts, parts[1:])]
    for mid, pause in [*quiet, *dips]:
        if not any(ws < mid < we for ws, we, _ in inside):
            cuts.append((mid, pause))
    return [(p, pause) for p, pause in cuts if start < p < end]


def split_long(start: float, end: float, words: Sequence[dict] = (), speech: Sequence[Interval] = (), *,
               dips: Sequence[tuple[float, float]] = (), max_len: float = MAX_UTTERANCE,
               min_part: float = MIN_PART) -> list[Interval]:
    """[start, end] as back-to-back parts of at most ``max_len`` seconds, cut at pauses.

    A cut goes where the pause is longest (between two words, or where the detector heard none), preferring
    parts of equal length when pauses are alike; without any pause it goes at a word boundary or at one of the
    ``dips`` (position, score in seconds of pause it is worth: a dip of the sound level between syllables, for
    speech without words), and only a stretch with none of these is cut at ``max_len``.
    """
    if not max_len > 0:
        raise ValueError(f"the longest utterance must be a positive number of seconds, got {max_len}")
    spans = _word_spans(words)
    cuts = _split_points(start, end, spans, merge_intervals(speech), dips)
    parts, s = [], start
    while end - s > max_len:
        n = math.ceil((end - s) / max_len)
        ideal = s + (end - s) / n
        window = [(p, pause) for p, pause in cuts if s + min(min_part, max_len / 2) <= p <= s + max_len
                  and p <= end - min(min_part, max_len / 2)]
        if window:
            cut = max(window, key=lambda c: (c[1] - 0.05 * abs(c[0] - ideal), -c[0]))[0]
        else:
            cut = s + max_len  # a stretch without a word boundary or a pause: cut it where it must be
        parts.append((s, cut))
        s = cut
    parts.append((s, end))
    return [(round(a, 3), round(b, 3)) for a, b in parts]


def pause_cuts(start: float, end: float, words: Sequence[dict], *, min_pause: float = MIN_PAUSE) -> list[Interval]:
    """[start, end) as back-to-back parts, cut in the middle of every pause of ``min_pause`` or more between two
    consecutive words of it."""
    inside = _inside(_word_spans(words), start, end)
    cuts = [(e0 + s1) / 2 for (_, e0, _), (s1, _, _) in zip(inside, inside[1:]) if s1 - e0 >= min_pause]
    bounds = [start, *(c for c in cuts if start < c < end), end]
    return list(zip(bounds, bounds[1:]))


def utterance_spans(speech: Sequence[Interval], words: Sequence[dict] = (), *, max_len: float = MAX_UTTERANCE,
                    min_pause: float = MIN_PAUSE, dips: Sequence[tuple[float, float]] = (),
                    duration: float | None = None) -> list[Interval]:
    """Utterances (start, end) of detected ``speech`` and whisper ``words`` (rows with start, end, utterance);
    ``dips``: extra places to split long ones (see :func:`split_long`); ``duration``: the video's, when known
    (nothing is placed outside [0, duration]).

    Every second of speech and every word lies in exactly one utterance; utterances are in time order, do not
    overlap, and two words ``min_pause`` or more apart are never in the same one.
    """
    spans = _word_spans(words)
    raw = clip_intervals([*speech, *((s, e) for s, e, _ in spans)], duration)
    out: list[Interval] = []
    for s, e in merge_intervals(raw, min_pause):
        for a, b in pause_cuts(s, e, words, min_pause=min_pause):
            out += split_long(a, b, words, raw, dips=[d for d in dips if a < d[0] < b], max_len=max_len)
    return out


def clip_intervals(intervals: Iterable[Interval], duration: float | None) -> list[Interval]:
    """``intervals`` merged and cut to [0, duration] (``duration`` None: [0, inf))."""
    end = math.inf if duration is None else float(duration)
    return [(max(0.0, s), min(e, end)) for s, e in merge_intervals(intervals) if min(e, end) > max(0.0, s)]


def silent_spans(rows: Sequence[Interval], duration: float, *, min_len: float) -> list[Interval]:
    """The stretches of [0, duration] outside ``rows`` that last at least ``min_len`` seconds."""
    gaps, t = [], 0.0
    for s, e in merge_intervals(rows):
        if s - t >= min_len:
            gaps.append((t, s))
        t = max(t, e)
    if duration - t >= min_len:
        gaps.append((t, duration))
    return gaps


def even_parts(start: float, end: float, max_len: float = MAX_UTTERANCE) -> list[Interval]:
    """[start, end] in equal back-to-back parts of at most ``max_len`` seconds."""
    n = max(1, math.ceil((end - start) / max_len - 1e-9))
    step = (end - start) / n
    return [(round(start + k * step, 3), round(start + (k + 1) * step, 3)) for k in range(n)]


def utterance_segments(video_id: str, words: Sequence[dict], duration: float, *, speech: Sequence[Interval] = (),
                       max_len: float = MAX_UTTERANCE, min_pause: float = MIN_PAUSE) -> list[Segment]:
    """One segment per utterance (:func:`utterance_spans`) of ``speech`` and ``words``, ids ``<video>_0000``...

    With neither speech nor words (silence, no audio) the whole video is one segment.
    """
    spans = utterance_spans(speech, words, max_len=max_len, min_pause=min_pause, duration=duration) or \
        [(0.0, round(duration, 3))]
    return [Segment(video_id, f"{video_id}_{k:04d}", s, e) for k, (s, e) in enumerate(spans)]


def window_segments(video_id: str, duration: float, window: float) -> list[Segment]:
    """Back-to-back windows of ``window`` seconds; the last one ends at ``duration``."""
    if not window > 0:
        raise ValueError(f"the segment window must be a positive number of seconds, got {window}")
    n = max(1, math.ceil(duration / window - 1e-9))
    return [Segment(video_id, f"{video_id}_{k:04d}", round(k * window, 3), round(min((k + 1) * window, duration), 3))
            for k in range(n)]
