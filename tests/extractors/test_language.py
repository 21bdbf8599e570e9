"""The whisper + GloVe language stream on real clips, silence and media without audio."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

import extractors
from extractors.base import Media
from extractors.language import LanguageConfig, vocabulary_key
from extractors.media import decode
from extractors.whisper_words import TranscribeOptions, transcribe_words
from tests.extractors.media_files import cremad_clips

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def extractor():
    """The openai-whisper engine, the reference (the CTranslate2 engine is compared with it in
    test_whisper_ct2_engine.py)."""
    return extractors.create("whisper-glove", engine="openai-whisper")


@pytest.fixture(scope="module")
def clips():
    return {emotion: decode(path, fps=1) for emotion, path in cremad_clips().items()}


def _silent(seconds: float, *, has_audio: bool = True) -> Media:
    audio = np.zeros(int(seconds * 16000) if has_audio else 0, np.float32)
    return Media("silence.wav", seconds, audio, 16000, np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0))


def test_registered_with_its_schema():
    assert "whisper-glove" in extractors.available("language")
    ex = extractors.create("whisper-glove", glove=None, short_window_seconds=None)
    assert isinstance(ex.config, LanguageConfig) and ex.config.short_window_seconds is None
    assert ex.config.model == "base" and ex.config.language == "en" and ex.config.engine == "ctranslate2"
    assert ex.frame_shift is None
    assert ex.feature_names == [f"glove_{i}" for i in range(50)]
    schema = ex.schema()
    assert schema.names == ["utterance", "word", "start", "end", "probability", "in_vocab", "features"]
    assert schema.field("features").type == pa.list_(pa.float32(), 50)
    assert schema.field("utterance").type == pa.int32() and schema.field("start").type == pa.float64()
    assert schema.metadata[b"extractor"] == b"whisper-glove"
    assert ex._model is None and ex._engine is None, "building the schema must not load whisper"


def test_vocabulary_key_lowercases_and_strips_punctuation(extractor):
    kv = extractor.vectors
    assert vocabulary_key("Jacket.", kv) == "jacket"
    assert vocabulary_key("\"Forget,", kv) == "forget"
    assert vocabulary_key("Don't", kv) == "dont"  # GloVe 6B splits "don't"; its "dont" is the whole word
    assert vocabulary_key("U.S.", kv) == "u.s"
    assert vocabulary_key("qzxvbtrwq", kv) is None
    assert vocabulary_key("...", kv) is None


@pytest.mark.parametrize("engine", ["openai-whisper", "ctranslate2"])
def test_cremad_transcripts(extractor, clips, engine):
    """Every clip says "forget"; times increase and lie inside the clip; vectors are GloVe's."""
    extractor = extractor if engine == "openai-whisper" else extractors.create("whisper-glove", engine=engine)
    kv = extractor.vectors
    for emotion, media in clips.items():
        table = extractor.extract(media)
        assert table.schema == extractor.schema()
        rows = table.to_pylist()
        words = [r["word"].lower().strip(".,!?") for r in rows]
        assert "forget" in words, (emotion, words)
        starts = np.array([r["start"] for r in rows])
        ends = np.array([r["end"] for r in rows])
        assert np.all(np.diff(starts) >= 0) and np.all(np.diff(ends) >= 0), (emotion, starts, ends)
        assert np.all(starts >= 0) and np.all(ends >= starts) and np.all(ends <= media.duration + 1e-6)
        assert all(0.0 < r["probability"] <= 1.0 for r in rows)
        assert [r["utterance"] for r in rows] == [0] * len(rows)  # one sentence
        for r in rows:
            key = vocabulary_key(r["word"], kv)
            assert r["in_vocab"] == (key is not None)
            expected = kv[key] if key is not None else np.zeros(50, np.float32)
            np.testing.assert_array_equal(np.asarray(r["features"], np.float32), expected)


def test_short_window_keeps_the_full_window_words_and_timings(extractor, clips):
    """A 10-s window for a 2-s clip gives the 30-s window's words, times within a few 20-ms steps; the 30-s
    window (short_window_seconds=None) is openai-whisper's transcribe exactly."""
    model = extractor.model
    audio = clips["ANG"].audio
    full = transcribe_words(model, audio, TranscribeOptions(short_window_seconds=None, encoder_precision="float32"))
    short = transcribe_words(model, audio, TranscribeOptions(encoder_precision="float32"))
    reference = model.transcribe(audio, language="en", word_timestamps=True, fp16=False,
                                 condition_on_previous_text=False)
    ref = [(w["word"].strip(), w["start"], w["end"]) for s in reference["segments"] for w in s["words"]]
    assert [(w.word, w.start, w.end) for w in full] == ref
    np.testing.assert_allclose([w.probability for w in full],
                               [w["probability"] for s in reference["segments"] for w in s["words"]], atol=1e-4)
    assert [w.word.lower().strip(".!") for w in short] == [w.word.lower().strip(".!") for w in full]
    deviation = max(max(abs(a.start - b.start), abs(a.end - b.end)) for a, b in zip(short, full))
    assert deviation <= 0.06, deviation


def test_bfloat16_encoder_keeps_the_words_and_their_times(extractor, clips):
    """The encoder under bfloat16 autocast: its features within a few % of float32's, and on every clip the same
    words at the same times (within one 20-ms step)."""
    from extractors.whisper_words import encode, log_mel

    model = extractor.model
    mel = log_mel(clips["ANG"].audio, model.dims.n_mels)
    mel = torch.nn.functional.pad(mel, (0, 800 - mel.shape[-1]))[None]  # an 8-s window
    exact, fast = encode(model, mel), encode(model, mel, bfloat16=True)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert 1e-4 < float((fast - exact).norm() / exact.norm()) < 0.05  # bfloat16 did run, and stayed close
    for emotion, media in clips.items():
        words = [transcribe_words(model, media.audio, TranscribeOptions(encoder_precision=p))
                 for p in ("float32", "bfloat16")]
        assert [w.word for w in words[0]] == [w.word for w in words[1]], emotion
        for a, b in zip(*words):
            assert abs(a.start - b.start) <= 0.02 and abs(a.end - b.end) <= 0.02, (emotion, a, b)


def test_encoder_precision_resolves_on_the_cpu(extractor):
    from extractors.whisper_precision import encoder_bfloat16, native_bfloat16

    assert not encoder_bfloat16("cpu", "float32")
    assert encoder_bfloat16("cpu", "bfloat16")
    assert encoder_bfloat16("cpu", TranscribeOptions().encoder_precision) == native_bfloat16()
    assert not encoder_bfloat16("cuda", "bfloat16")  # CPU autocast only
    assert extractor.model_identity()["whisper encoder"] == ("bfloat16 (CPU autocast)" if native_bfloat16()
                                                             else "float32")
    with pytest.raises(ValueError, match="encoder_precision 'fp16'"):
        extractors.create("whisper-glove", encoder_precision="fp16")


def test_short_window_keeps_every_sentence(extractor, clips):
    """Two sentences 0.5 s apart in a short window: both found, each where it was said (a window cut to the
    audio + 1 s loses the second one)."""
    first, second = clips["ANG"].audio, clips["NEU"].audio
    audio = np.concatenate([first, np.zeros(8000, np.float32), second])
    words = transcribe_words(extractor.model, audio, TranscribeOptions())
    forgets = [w for w in words if w.word.lower() == "forget"]
    assert len(forgets) == 2, [w.word for w in words]
    second_start = (len(first) + 8000) / 16000
    assert forgets[0].end <= len(first) / 16000 and second_start <= forgets[1].start <= len(audio) / 16000


def test_long_audio_spans_windows(extractor, clips):
    """Clips joined into ~40 s of audio: 30-s windows, then a short one; each sentence found where it was put."""
    gap = np.zeros(16000 * 6, np.float32)  # 6 s of silence between sentences
    pieces = [clips[e].audio for e in ("ANG", "HAP", "NEU", "SAD", "DIS")]
    audio = np.concatenate([x for p in pieces for x in (p, gap)])
    starts = np.cumsum([0] + [len(p) + len(gap) for p in pieces[:-1]]) / 16000
    words = transcribe_words(extractor.model, audio, TranscribeOptions())
    assert len(audio) / 16000 > 30
    forgets = [w for w in words if w.word.lower().strip(".,!") == "forget"]
    assert len(forgets) == len(pieces), [(w.word, w.start) for w in words]
    for w, t0, piece in zip(forgets, starts, pieces):
        assert t0 <= w.start < t0 + len(piece) / 16000, (w, t0)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    assert all(w.end <= len(audio) / 16000 for w in words)
    assert [w.utterance for w in words] == sorted(w.utterance for w in words)


def test_silence_gives_no_words(extractor):
    table = extractor.extract(_silent(3.0))
    assert table.num_rows == 0 and table.schema == extractor.schema()


def test_no_audio_gives_an_empty_table_without_loading_whisper():
    ex = extractors.create("whisper-glove")
    table = ex.extract(_silent(2.0, has_audio=False))
    assert table.num_rows == 0 and table.schema == ex.schema()
    assert ex._model is None and ex._engine is None


@pytest.mark.parametrize("short, content", [(3.0, 5.0), (40.0, 5.0), (10.0, 0.0)])
def test_inconsistent_short_window_options_are_refused(short, content):
    with pytest.raises(ValueError, match="short_content_seconds"):
        TranscribeOptions(short_window_seconds=short, short_content_seconds=content)
    TranscribeOptions(short_window_seconds=None, short_content_seconds=content)  # no short window: not used


def test_fallback_sampling_gives_the_same_words_on_every_run(extractor, clips):
    """At a temperature above 0 whisper samples; seeded, a window decodes to the same tokens every time (unseeded,
    this noisy clip at temperature 1 gave four different transcripts in four runs) and the caller's torch
    generator is left where it was."""
    import dataclasses

    import torch
    import torch.nn.functional as F

    from extractors.whisper_words import decode as decode_window
    from extractors.whisper_words import encode, log_mel, window_frames

    audio = extractor._audio(clips["FEA"])
    noise = np.random.default_rng(0).normal(0, 3 * np.sqrt(np.mean(audio ** 2)), len(audio)).astype(np.float32)
    options = dataclasses.replace(TranscribeOptions(), temperatures=(1.0,))
    mel = log_mel(audio + noise, extractor.model.dims.n_mels)
    features = encode(extractor.model, F.pad(mel, (0, window_frames(options, mel.shape[-1]) - mel.shape[-1]))[None])
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    runs = [decode_window(extractor.model, features, options).tokens for _ in range(3)]
    assert runs[0] == runs[1] == runs[2], runs
    assert torch.equal(torch.random.get_rng_state(), state)
