"""Chunk planning (cuts in silences, on the sampling grid) and the speech regions whisper is given: fast, no media."""
from __future__ import annotations

import numpy as np
import pytest

from extractors.vad import speech_regions
from workflows.extract.chunks import Chunk, ChunkConfig, plan_chunks, stream_hash

HOP = 0.01


def _levels(seconds: float, silences: list[tuple[float, float]], speech: float = 0.1, quiet: float = 1e-4,
            seed: int = 0) -> np.ndarray:
    """RMS levels per 10 ms: speech-like level everywhere but in ``silences``."""
    rng = np.random.default_rng(seed)
    rms = speech * (0.5 + rng.random(int(round(seconds / HOP))))
    for a, b in silences:
        rms[int(a / HOP):int(b / HOP)] = quiet
    return rms.astype(np.float32)


def test_a_short_video_is_one_chunk():
    config = ChunkConfig(seconds=30)
    assert [(c.start, c.end) for c in plan_chunks(_levels(44, []), HOP, 44.0, config)] == [(0.0, None)]
    assert len(plan_chunks(_levels(46, []), HOP, 46.0, config)) == 2


def test_cuts_fall_in_the_silence_nearest_the_target_on_the_grid():
    silences = [(12.0, 12.6), (27.3, 27.9), (29.0, 29.1), (41.0, 41.8), (58.7, 59.5), (88.1, 88.9)]
    chunks = plan_chunks(_levels(100, silences), HOP, 100.0, ChunkConfig(seconds=30), grid=0.1)
    cuts = [c.start for c in chunks[1:]]
    assert cuts == [27.6, 59.1], cuts  # not 29.0-29.1 (shorter than min_silence); 40.9 s left is one chunk
    assert [c.index for c in chunks] == [0, 1, 2] and chunks[-1].end is None
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    assert all(abs(c * 10 - round(c * 10)) < 1e-9 for c in cuts)  # multiples of 1 / fps


def test_chunks_share_the_video_equally_with_nothing_left_over_for_the_last():
    """A 3-minute talk with a pause every 4 s: six chunks of about 30 s. The remainder used to go to the last
    chunk (37.4 s after five of ~29 s), which kept one of two workers busy alone at the end."""
    silences = [(t + 2.5, t + 4.0) for t in np.arange(0, 181, 4.0)]
    chunks = plan_chunks(_levels(181.5, silences), HOP, 181.5, ChunkConfig(seconds=30), grid=0.1)
    lengths = np.diff([c.start for c in chunks] + [181.5])
    assert len(chunks) == 6 and lengths.max() <= 1.15 * lengths.min(), lengths
    assert all(any(a <= c.start <= b for a, b in silences) for c in chunks[1:])


def test_without_silence_or_audio_chunks_still_cover_the_video():
    no_pause = plan_chunks(_levels(95, []), HOP, 95.0, ChunkConfig(seconds=30))
    silent = plan_chunks(np.zeros(0, np.float32), HOP, 95.0, ChunkConfig(seconds=30))
    for chunks in (no_pause, silent):
        assert chunks[0].start == 0.0 and chunks[-1].end is None and 3 <= len(chunks) <= 4
        lengths = np.diff([c.start for c in chunks] + [95.0])
        assert lengths.min() >= 15 and lengths.max() <= 45, lengths


def test_the_chunking_is_part_of_the_audio_streams_config_hash():
    assert stream_hash("abc", None) == "abc"
    assert stream_hash("abc", ChunkConfig()) == stream_hash("abc", ChunkConfig())
    assert stream_hash("abc", ChunkConfig(seconds=20)) != stream_hash("abc", ChunkConfig())
    with pytest.raises(ValueError):
        ChunkConfig(seconds=0)


def _bursts(sr: int, layout: list[tuple[float, float]], seconds: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    audio = 1e-4 * rng.standard_normal(int(seconds * sr)).astype(np.float32)  # a noise floor
    t = np.arange(audio.size) / sr
    for a, b in layout:
        inside = (t >= a) & (t < b)
        audio[inside] += 0.3 * np.sin(2 * np.pi * 180 * t[inside]).astype(np.float32)
    return audio


def test_speech_regions_split_at_silences_and_pad_their_edges():
    sr = 16000
    audio = _bursts(sr, [(1.0, 2.5), (2.8, 3.5), (6.0, 7.0)], 9.0)
    regions = [(a / sr, b / sr) for a, b in speech_regions(audio, sr, min_silence=0.5, pad=0.2)]
    assert len(regions) == 2, regions  # the 0.3-s pause does not split
    (a0, b0), (a1, b1) = regions
    assert a0 == pytest.approx(0.8, abs=0.03) and b0 == pytest.approx(3.7, abs=0.03)
    assert a1 == pytest.approx(5.8, abs=0.03) and b1 == pytest.approx(7.2, abs=0.03)
    assert speech_regions(np.zeros(sr, np.float32), sr) == []
    assert speech_regions(_bursts(sr, [(0.0, 2.0)], 2.0), sr) == [(0, 2 * sr)]


def test_the_chunks_of_a_plan_start_longest_first_so_that_none_runs_alone_at_the_end():
    from workflows.extract.plan import Plan
    from workflows.extract.run import _Run

    chunks = (Chunk(0, 0.0, 30.5), Chunk(1, 30.5, 59.1), Chunk(2, 59.1, 88.4), Chunk(3, 88.4, 116.3),
              Chunk(4, 116.3, 144.6), Chunk(5, 144.6, None))  # the cuts of a 3-minute video of dense speech
    plan = Plan(chunks, (), "sha", 25.0, 0.5, {}, 0.1, duration=180.9)
    assert [c.index for c in plan.longest_first()] == [5, 0, 2, 1, 4, 3]

    submitted = []
    run = _Run.__new__(_Run)  # the client's side alone: what it submits for a plan, and at which priority
    run.chunk_results, run.summary, run.store, run.decode_options = {}, type("S", (), {"chunks": 0})(), None, None
    run._submit = lambda kind, about, func, *args, priority: submitted.append((about[2], priority))
    run._on_prepare(type("Src", (), {"video_id": "v"})(), {"_outcome": "plan", "_plan": plan}, None)
    by_priority = [index for index, _ in sorted(submitted, key=lambda s: -s[1])]
    assert by_priority == [5, 0, 2, 1, 4, 3]
