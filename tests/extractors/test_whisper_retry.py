"""A short window whose first decode fails is decoded again in a wider window (``retry_window_seconds``), on real
clips with the bundled whisper (CTranslate2, the default engine)."""
from __future__ import annotations

import numpy as np
import pytest

import extractors
from extractors.media import decode
from extractors.whisper_words import TranscribeOptions, transcribe_words
from tests.extractors.media_files import cremad_clips

pytestmark = pytest.mark.slow


class CountingEngine:
    """The real engine, with the length (mel frames) of every window it encodes written down."""

    def __init__(self, engine):
        self.engine, self.windows = engine, []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def encode(self, mel):
        self.windows.append(mel.shape[-1])
        return self.engine.encode(mel)


@pytest.fixture(scope="module")
def engine():
    return extractors.create("whisper-glove").engine


@pytest.fixture(scope="module")
def audio():
    """A sentence, and the same sentence backwards (no words in it: whisper's decode of it fails)."""
    sentence = decode(cremad_clips()["DIS"], fps=1).audio
    return {"sentence": sentence, "backwards": np.ascontiguousarray(sentence[::-1])}


def _words(engine, audio, **options):
    counting, states = CountingEngine(engine), []
    words = transcribe_words(counting, audio, TranscribeOptions(**options),
                             on_window=lambda seek, window, s: states.append((seek, window, s.numpy().copy())))
    return [(w.word, w.start, w.end) for w in words], counting.windows, states


def test_a_window_that_decodes_is_not_encoded_again(engine, audio):
    words, windows, _ = _words(engine, audio["sentence"])
    assert windows == [800]  # one 8-s window
    assert " ".join(w for w, _, _ in words).lower().startswith("don't forget a jacket")
    assert words == _words(engine, audio["sentence"], retry_window_seconds=None)[0]


def test_a_failed_window_gets_the_wider_windows_words_and_keeps_its_own_states(engine, audio):
    words, windows, states = _words(engine, audio["backwards"])
    assert windows == [800, 1600]  # the 8-s window failed, the 16-s one was decoded
    wide_words, wide_windows, _ = _words(engine, audio["backwards"], short_window_seconds=16.0,
                                         retry_window_seconds=None)
    assert wide_windows == [1600] and words == wide_words and words  # whisper hears words in it, 16 s wide
    # the encoder states told on are the short window's, as without the retry (the whisper-encoder stream's)
    _, plain_windows, plain_states = _words(engine, audio["backwards"], retry_window_seconds=None)
    assert plain_windows == [800] and len(states) == len(plain_states) == 1
    assert states[0][:2] == plain_states[0][:2] == (0, 800)
    np.testing.assert_allclose(states[0][2], plain_states[0][2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("short, retry", [(8.0, 8.0), (8.0, 6.0), (8.0, 31.0)])
def test_a_retry_window_not_wider_than_the_short_one_is_refused(short, retry):
    with pytest.raises(ValueError, match="retry_window_seconds"):
        TranscribeOptions(short_window_seconds=short, retry_window_seconds=retry)
    TranscribeOptions(short_window_seconds=None, retry_window_seconds=retry)  # no short window: never used
