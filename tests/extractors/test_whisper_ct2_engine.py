"""The CTranslate2 engine of whisper against the openai-whisper reference, on real speech; the encoder states it
leaves for the whisper-encoder stream; the temperature fallback's cap (issue 20, items 1 and 2)."""
from __future__ import annotations

import dataclasses
import re

import jiwer
import numpy as np
import pytest

import extractors
from extractors.media import decode
from extractors.whisper_ct2_engine import CTranslate2Engine
from extractors.whisper_model import STATES
from extractors.whisper_regions import transcribe_regions
from extractors.whisper_words import TEMPERATURES, TranscribeOptions
from pipeline.errors import AssetNotFoundError
from tests.extractors.media_files import cremad_clips

pytestmark = pytest.mark.slow
OPENAI = {"engine": "openai-whisper", "encoder_precision": "float32"}


@pytest.fixture(scope="module")
def clips():
    return {emotion: decode(path, fps=1) for emotion, path in cremad_clips().items()}


@pytest.fixture(scope="module")
def paused(clips):
    """(S,) the six clips, 1 s of silence after each: six speech regions, decoded in one batch."""
    silence = np.zeros(16000, np.float32)
    return np.concatenate([x for media in clips.values() for x in (media.audio, silence)])


def _words(words) -> list[str]:
    return [w for w in (re.sub(r"[^\w']", "", x.word.lower()) for x in words) if w]


def test_ctranslate2_words_and_times_are_openai_whispers(paused):
    """The default engine (CTranslate2, its default compute type) against openai-whisper on the same weights: word
    error rate within 0.02 and word times within 0.1 s (median) on real speech."""
    reference = extractors.create("whisper-glove", **OPENAI)
    fast = extractors.create("whisper-glove")
    assert fast.config.engine == "ctranslate2" and isinstance(fast.engine, CTranslate2Engine)
    options = TranscribeOptions()
    expected = transcribe_regions(reference.engine, paused, options)
    got = transcribe_regions(fast.engine, paused, options)
    assert len(_words(expected)) == 24  # "don't forget a jacket" six times
    assert jiwer.wer(" ".join(_words(expected)), " ".join(_words(got))) <= 0.02, (_words(expected), _words(got))
    pairs = [(a, b) for a, b in zip(expected, got) if _words([a]) == _words([b])]
    differences = [abs(x - y) for a, b in pairs for x, y in ((a.start, b.start), (a.end, b.end))]
    assert len(pairs) >= 23 and np.median(differences) <= 0.1, differences


def test_states_of_the_ctranslate2_pass_are_a_separate_ctranslate2_encode(clips, monkeypatch):
    """Beside the language extractor, whisper-encoder takes the CTranslate2 pass's windows (nothing encoded again),
    and they equal the states it encodes on its own."""
    language, encoder = extractors.create("whisper-glove"), extractors.create("whisper-encoder")
    media = clips["ANG"]
    alone = encoder.extract(media)
    calls = [0]
    plain = CTranslate2Engine.encode

    def counted(self, mel):
        calls[0] += mel.shape[0]
        return plain(self, mel)

    monkeypatch.setattr(CTranslate2Engine, "encode", counted)
    shared = {STATES: {}}
    language.extract_shared(media, shared)
    asr_windows = calls[0]
    assert asr_windows >= 1 and len(shared[STATES]) == asr_windows
    both = encoder.extract_shared(media, shared)
    assert calls[0] == asr_windows, "the acoustic stream encoded a window the ASR pass had encoded"
    np.testing.assert_array_equal(np.asarray(both["time"]), np.asarray(alone["time"]))
    np.testing.assert_allclose(np.stack(both["features"].to_numpy(zero_copy_only=False)),
                               np.stack(alone["features"].to_numpy(zero_copy_only=False)), rtol=1e-5, atol=1e-6)
    # and they are not the openai-whisper engine's: the engine is part of the stream's identity
    openai = extractors.create("whisper-encoder", **OPENAI)
    assert openai.config_hash() != encoder.config_hash()
    assert openai.states_key(media.audio, 0, 800) != encoder.states_key(media.audio, 0, 800)
    assert encoder.model_identity()["whisper engine"].startswith("ctranslate2 ")


class _CountingEngine:
    """A real engine whose decodes are counted."""

    def __init__(self, engine):
        self.engine, self.decodes = engine, 0
        self.name, self.n_mels, self.n_state = engine.name, engine.n_mels, engine.n_state

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def decode_batch(self, features, options, temperature, seed=None):
        self.decodes += features.shape[0]
        return self.engine.decode_batch(features, options, temperature, seed)


@pytest.mark.parametrize("engine", ["ctranslate2", "openai-whisper"])
def test_a_failing_window_is_decoded_at_most_three_times_by_default(clips, engine):
    """Noise over a clip makes every decode improbable: openai-whisper decodes it at six temperatures, the
    language extractor (``fallback = 1``) twice in the window; a short window that fails is first decoded once in
    its own window (``retry_window_seconds``); the options the extractor passes say so."""
    extractor = extractors.create("whisper-glove", engine=engine)
    assert extractor.config.fallback == 1
    audio = clips["FEA"].audio
    noisy = audio + np.random.default_rng(0).normal(0, 3 * np.sqrt(np.mean(audio ** 2)), len(audio)).astype(
        np.float32)
    counting = _CountingEngine(extractor.engine)
    for retry, extra in ((None, 0), (extractor.config.retry_window_seconds, 1)):
        counting.decodes = 0
        transcribe_regions(counting, noisy, TranscribeOptions(vad_min_silence=30.0, retry_window_seconds=retry))
        assert counting.decodes == len(TEMPERATURES) + extra  # openai-whisper's fallback: every temperature
        counting.decodes = 0
        capped = TranscribeOptions(vad_min_silence=30.0, temperatures=TEMPERATURES[:1 + extractor.config.fallback],
                                   retry_window_seconds=retry)
        transcribe_regions(counting, noisy, capped)
        assert counting.decodes == 2 + extra
    with pytest.raises(ValueError, match="fallback 6"):
        extractors.create("whisper-glove", fallback=6)


def test_engine_options_are_checked_and_ctranslate2_needs_a_ctranslate2_model(tmp_path):
    with pytest.raises(ValueError, match="engine 'torch'"):
        extractors.create("whisper-glove", engine="torch")
    with pytest.raises(ValueError, match="compute_type 'int4'"):
        extractors.create("whisper-encoder", compute_type="int4")
    checkpoint = tmp_path / "mine.pt"
    checkpoint.write_bytes(b"not a model")
    with pytest.raises(AssetNotFoundError, match='engine = "openai-whisper"'):
        extractors.create("whisper-glove", model=str(checkpoint)).engine
    assert dataclasses.asdict(extractors.create("whisper-glove").config)["engine"] == "ctranslate2"
