"""openai-whisper ``transcribe``'s rules on a window's tokens and word timings, whichever engine produced them
(:mod:`extractors.whisper_words`: openai-whisper in PyTorch; :mod:`extractors.whisper_ct2_engine`: CTranslate2).

* :func:`split_segments`: a window's tokens cut into timestamp-delimited segments, and how far to seek;
* :func:`timings_from_alignment`: the DTW path of the alignment heads -> one timing per word;
* :func:`assign_words`: the pause and sentence heuristics of ``add_word_timestamps``, words handed to segments;
* :func:`is_anomalous`: openai-whisper's hallucination test of a segment.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from whisper.audio import HOP_LENGTH, SAMPLE_RATE
from whisper.timing import TOKENS_PER_SECOND, WordTiming as Timing, merge_punctuations
from whisper.tokenizer import Tokenizer

FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames per second, 2 per encoder position
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
PUNCTUATION = "\"'“¿([{-\"'.。,，!！?？:：”)]}、"  # openai-whisper transcribe's


def timings_from_alignment(tokenizer: Tokenizer, text_tokens: list[int], text_indices: np.ndarray,
                           time_indices: np.ndarray, text_token_probs: list[float]) -> list[Timing]:
    """One timing (seconds from the window start) per word of ``text_tokens``, from the DTW path over the
    alignment heads' cross-attention ((K,) token index and (K,) encoder position of each step, as
    ``whisper.timing.find_alignment``) and each token's probability."""
    words, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    return [Timing(word, toks, float(start), float(end), float(np.mean(text_token_probs[i:j])))
            for word, toks, start, end, i, j in zip(words, word_tokens, jump_times[boundaries[:-1]],
                                                    jump_times[boundaries[1:]], boundaries[:-1], boundaries[1:])]


def split_segments(tokens: list[int], tokenizer: Tokenizer, offset: float, duration: float
                   ) -> tuple[list[list[int]], list[tuple[float, float]], bool, int]:
    """Split a window's tokens at consecutive timestamps, as openai-whisper's transcribe.

    Returns the text tokens and (start, end) seconds of each segment, whether the window ended on a single
    timestamp (no speech after it), and how many frames to advance (to the last timestamp when the last segment
    is unfinished, else the whole window).
    """
    stamps = [t >= tokenizer.timestamp_begin for t in tokens]
    single_ending = stamps[-2:] == [False, True]
    window_frames = round(duration * FRAMES_PER_SECOND)
    cuts = [i + 1 for i in range(len(tokens) - 1) if stamps[i] and stamps[i + 1]]
    if not cuts:
        times = [t - tokenizer.timestamp_begin for t, s in zip(tokens, stamps) if s]
        if times and times[-1] > 0:
            duration = times[-1] * 0.02
        return [[t for t in tokens if t < tokenizer.eot]], [(offset, offset + duration)], single_ending, window_frames
    if single_ending:
        cuts.append(len(tokens))
    pieces = [tokens[a:b] for a, b in zip([0, *cuts[:-1]], cuts)]
    texts = [[t for t in p if t < tokenizer.eot] for p in pieces]
    spans = [(offset + (p[0] - tokenizer.timestamp_begin) * 0.02, offset + (p[-1] - tokenizer.timestamp_begin) * 0.02)
             for p in pieces]
    advance = window_frames if single_ending else (tokens[cuts[-1] - 1] - tokenizer.timestamp_begin) * 2
    return texts, spans, single_ending, advance


def assign_words(timings: list[Timing], texts: list[list[int]], spans: list[tuple[float, float]], offset: float,
                 last_speech: float) -> list[list[Timing]]:
    """openai-whisper's ``add_word_timestamps`` heuristics: cap words at sentence and pause boundaries, merge
    punctuation into words, and hand the words to their segments (times in seconds from the audio start)."""
    durations = np.array([t.end - t.start for t in timings])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    longest = median * 2
    if len(durations):
        for prev, cur in zip(timings, timings[1:]):
            if cur.end - cur.start > longest:
                if cur.word in ".。!！?？":
                    cur.end = cur.start + longest
                elif prev.word in ".。!！?？":
                    cur.start = cur.end - longest
    merge_punctuations(timings, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
    out, index = [], 0
    for text, (seg_start, seg_end) in zip(texts, spans):
        words, saved = [], 0
        while index < len(timings) and saved < len(text):
            timing = timings[index]
            if timing.word:
                words.append(replace(timing, start=round(offset + timing.start, 2), end=round(offset + timing.end, 2)))
            saved += len(timing.tokens)
            index += 1
        if words:
            first = words[0]
            if first.end - last_speech > median * 4 and (first.end - first.start > longest or (
                    len(words) > 1 and words[1].end - first.start > longest * 2)):
                if len(words) > 1 and words[1].end - words[1].start > longest:
                    words[0].end = words[1].start = max(words[1].end / 2, words[1].end - longest)
                words[0].start = max(0.0, words[0].end - longest)
            if seg_start < words[0].end and seg_start - 0.5 > words[0].start:
                words[0].start = max(0.0, min(words[0].end - median, seg_start))
            if seg_end > words[-1].start and seg_end + 0.5 < words[-1].end:
                words[-1].end = max(words[-1].start + median, seg_end)
            last_speech = words[-1].end
        out.append(words)
    return out


def is_anomalous(words: list[Timing]) -> bool:
    """openai-whisper's hallucination test of a segment: its first 8 words are improbable (< 0.15), squeezed
    (< 0.133 s) or stretched (> 2 s) on the whole."""
    def score(w: Timing) -> float:
        duration = w.end - w.start
        return ((w.probability < 0.15) + max(0.0, 0.133 - duration) * 15 * (duration < 0.133)
                + max(0.0, duration - 2.0))

    words = [w for w in words if w.word not in PUNCTUATION][:8]
    total = sum(score(w) for w in words)
    return bool(words) and (total >= 3 or total + 0.01 >= len(words))
