"""Whisper on speech regions: silence skipped, short regions encoded and decoded in batches.

The audio is split at silences (:func:`extractors.vad.speech_regions`; neighbours that fit one short window
together are joined); each region is transcribed on its own, as :func:`extractors.whisper_words.transcribe_words`
would transcribe it, with its times shifted to the audio's and its utterance ids continuing those of the regions
before. The regions that fit one short window (most utterances: at most ``short_content_seconds``) have that window
encoded, and decoded at the first temperature, ``batch_size`` regions at a time: openai-whisper's decoder is as
fast on a batch of 8 as on 2 or 3 windows one by one on CPU, and CTranslate2's
(:mod:`extractors.whisper_ct2_engine`) decodes a batch in one call. Temperature fallback, the retry of a failed
short window in a wider one, the word alignment and any window after the first stay per region, so a region's words
are those it would get alone (up to float rounding in batched matrix products). Either engine runs it
(:class:`extractors.whisper_words.Engine`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from whisper.audio import HOP_LENGTH, N_FRAMES, SAMPLE_RATE
from whisper.decoding import DecodingResult
from whisper.model import Whisper

from extractors.vad import speech_regions
from extractors.whisper_words import (FRAMES_PER_SECOND, Engine, TranscribeOptions, engine_of, log_mel,
                                      transcribe_words, window_frames)
from pipeline.manifest import WordTiming

First = tuple[torch.Tensor, DecodingResult]


def transcribe_regions(model: Whisper | Engine, audio: np.ndarray, options: TranscribeOptions, *, origin: int = 0,
                       on_window: Callable[[np.ndarray, int, int, torch.Tensor], None] | None = None
                       ) -> list[WordTiming]:
    """(S,) float32 16-kHz audio -> words of its speech regions, times in seconds from the audio's start.

    ``origin``: the sample index of ``audio[0]`` in the recording (a chunk's start), so that the regions of a
    piece of a recording are those the whole would have (:func:`extractors.vad.speech_regions`). ``on_window``:
    told of every window encoded, with the region's audio (``transcribe_words``'s ``on_window`` arguments after
    it). ``model``: an openai-whisper model or an engine (:class:`extractors.whisper_words.Engine`)."""
    engine = engine_of(model, options)
    regions = merge_regions(speech_regions(audio, SAMPLE_RATE, min_silence=options.vad_min_silence,
                                           silence_peak=options.silence_peak, origin=origin), options)
    firsts = first_windows(engine, [audio[a:b] for a, b in regions], options)
    out: list[WordTiming] = []
    for (a, b), first in zip(regions, firsts):
        utterance = out[-1].utterance + 1 if out else 0
        offset = a / SAMPLE_RATE
        told = None if on_window is None else (lambda *window, region=audio[a:b]: on_window(region, *window))
        words = transcribe_words(engine, audio[a:b], options, first=first, on_window=told)
        out += [replace(w, start=round(w.start + offset, 2), end=round(w.end + offset, 2),
                        utterance=w.utterance + utterance) for w in words]
    return out


def merge_regions(regions: list[tuple[int, int]], options: TranscribeOptions) -> list[tuple[int, int]]:
    """Neighbouring regions joined while they span at most one short window's content (``short_content_seconds``):
    one window costs the same whatever silence it holds."""
    limit = (options.short_content_seconds if options.short_window_seconds is not None else 0.0) * SAMPLE_RATE
    merged: list[tuple[int, int]] = []
    for a, b in regions:
        if merged and b - merged[-1][0] <= limit:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def first_windows(engine: Engine, audios: list[np.ndarray], options: TranscribeOptions) -> list[First | None]:
    """For each audio that fits one short window (and is not digital silence): that window's (1, T', d) features
    and its decoding at the first temperature, computed ``options.batch_size`` at a time; None for the others."""
    out: list[First | None] = [None] * len(audios)
    if options.batch_size <= 1 or options.short_window_seconds is None:
        return out
    mels, todo = {}, []
    for i, audio in enumerate(audios):
        mel = log_mel(audio, engine.n_mels)
        frames = min(N_FRAMES, mel.shape[-1])
        chunk = audio[: frames * HOP_LENGTH]
        if frames and frames <= options.short_content_seconds * FRAMES_PER_SECOND \
                and float(np.abs(chunk).max()) >= options.silence_peak:
            mels[i] = mel[:, :frames]
            todo.append(i)
    for k in range(0, len(todo), options.batch_size):
        group = todo[k:k + options.batch_size]
        if len(group) == 1:  # nothing to share: the per-region path does the same work
            continue
        window = window_frames(options, max(mels[i].shape[-1] for i in group))
        batch = torch.stack([F.pad(mels[i], (0, window - mels[i].shape[-1])) for i in group])
        features = engine.encode(batch)  # (B, window / 2, d)
        results = engine.decode_batch(features, options, options.temperatures[0])
        for j, i in enumerate(group):
            out[i] = (features[j:j + 1], results[j])
    return out
