"""Whisper's encoder states as an acoustic stream (``whisper-encoder``): how the words are said, as whisper hears it.

The states are those the language extractor's ASR pass computes (:mod:`extractors.whisper_regions`): the audio is
split into speech regions at silences (:func:`extractors.vad.speech_regions`, neighbours that fit one short window
joined), each region's log-mel is cut into windows of at most 30 s from its start (a region of at most
``short_content_seconds`` is one ``short_window_seconds`` window, zero-padded), and each window goes through the
encoder of the ``engine`` (:mod:`extractors.whisper_model`: CTranslate2's by default, or openai-whisper's in
PyTorch; the states, and so this stream, depend on it). The states of the positions that hold audio (one per 20 ms) are
mean-pooled to one row every ``hop`` seconds.

* Beside the language extractor (``Extractor.extract_shared``) the windows it encoded are taken from its pass,
  not encoded again; the ASR's first window of a region is this stream's first window, so only regions longer
  than 30 s (whose later ASR windows start where the decoded words end) have windows encoded here.
* Alone (``extract``: the acoustic stream recomputed), it runs the encoder only, short regions ``batch`` at a time;
  nothing is decoded.

Rows: ``time`` (float64 s, the centre of the row's span: a row pools the 20-ms positions that start in
``[k hop, (k + 1) hop)`` of the video's time, ``time = (k + 1/2) hop``) and ``features`` (d = 512 for whisper
base: ``whisper_000`` ...). Silence between speech regions has no rows (whisper never encodes it); a file without
audio, or audio without speech, gives an empty table.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa

from extractors.base import Extractor, ExtractorConfig, Media, features_column, frame_schema, register
from extractors.whisper_defaults import SHORT_WINDOW_SECONDS
from extractors.whisper_model import SAMPLE_RATE, STATES, StatesKey, WhisperBacked, audio_16k, check_engine
from pipeline.errors import StageError

if TYPE_CHECKING:
    from extractors.whisper_words import TranscribeOptions

POSITION_SECONDS = 0.02  # one encoder position: two 10-ms mel frames
SAMPLES_PER_POSITION = int(SAMPLE_RATE * POSITION_SECONDS)
WINDOW_FRAMES = 3000  # whisper's 30-s window, in mel frames

Window = tuple[int, int, int, int]  # region index, first mel frame (seek), mel frames of audio, frames encoded


@dataclass(frozen=True)
class EncoderConfig(ExtractorConfig):
    """Options of the whisper-encoder acoustic extractor. Those shared with ``LanguageConfig`` must be equal for
    the two extractors to share one encoder pass (whisper's defaults are)."""

    LEGACY: ClassVar[dict[str, Any]] = {"engine": "openai-whisper", "compute_type": "auto"}
    """Before 2026-12-05 (d30593a) the states were openai-whisper's encoder's, in PyTorch."""

    model: str = "base"
    """Whisper model: a name ("base", "tiny.en", ...), an openai-whisper .pt or a CTranslate2 directory."""
    engine: str = "ctranslate2"
    """"ctranslate2" or "openai-whisper", as the language extractor's: the states differ between them."""
    compute_type: str = "auto"
    """CTranslate2's precision, as the language extractor's."""
    allow_download: bool = False
    """Download the whisper model from openai when it is not available offline."""
    hop: float = 0.04
    """Seconds between rows, a multiple of 0.02 (whisper's 50 Hz): 0.04 mean-pools two positions (25 Hz)."""
    vad: bool = True
    """Encode speech regions, as the language extractor's ``vad``; False: the whole audio, in 30-s windows."""
    vad_min_silence: float = 0.5
    """Shortest silence (seconds) between two speech regions."""
    short_window_seconds: float | None = SHORT_WINDOW_SECONDS
    """The window encoded for a region of at most ``short_content_seconds``; None: always 30 s."""
    short_content_seconds: float = 4.0
    """Most audio a short window holds."""
    batch: int = 8
    """Short windows encoded together (alone only: beside the language extractor they come from its pass)."""
    encoder_precision: str = "auto"
    """"float32", "bfloat16" or "auto", as the language extractor's (:mod:`extractors.whisper_precision`)."""
    threads: int | None = None
    """torch CPU threads while encoding; None leaves torch's setting alone."""

    def __post_init__(self):
        from extractors.whisper_precision import check_encoder_precision

        check_encoder_precision(self.encoder_precision)
        check_engine(self.engine, self.compute_type)
        pool = self.hop / POSITION_SECONDS
        if not (pool >= 1 and abs(pool - round(pool)) < 1e-6):
            raise ValueError(f"hop {self.hop} s is not a multiple of whisper's {POSITION_SECONDS} s positions")
        if self.batch < 1:
            raise ValueError(f"batch {self.batch}: encode at least one window at a time")


@register
class WhisperEncoderExtractor(WhisperBacked, Extractor):
    """Pooled whisper encoder states of the speech in ``Media.audio``: one row per ``hop``, ``features`` (N, d)."""

    name = "whisper-encoder"
    modality = "acoustic"
    config_class = EncoderConfig
    reuses = (STATES,)
    chunk_margin = False  # a chunk's speech regions, as the language extractor's: the same windows

    @functools.cached_property
    def options(self) -> "TranscribeOptions":
        """How the windows are cut (made on first use: :mod:`extractors.whisper_words` imports torch, 2-3 s, which
        building an extractor in the command should not wait for)."""
        from extractors.whisper_words import TranscribeOptions

        c = self.config
        return TranscribeOptions(short_window_seconds=c.short_window_seconds,
                                 short_content_seconds=c.short_content_seconds,
                                 vad_min_silence=c.vad_min_silence, batch_size=c.batch,
                                 encoder_precision=c.encoder_precision)

    @property
    def frame_shift(self) -> float:
        return self.config.hop

    @property
    def feature_names(self) -> list[str]:
        return [f"whisper_{i:03d}" for i in range(self.engine.n_state)]

    def schema(self) -> pa.Schema:
        return frame_schema(self.feature_dim, self.metadata())

    def model_identity(self) -> dict[str, str]:
        return self.whisper_identity()

    def extract(self, media: Media) -> pa.Table:
        """(N, d) pooled states at times ``(k + 1/2) hop``; an empty table when there is no audio or speech."""
        return self.extract_shared(media, {})

    def extract_shared(self, media: Media, shared: dict) -> pa.Table:
        """:meth:`extract`, taking the windows the language extractor encoded from ``shared[STATES]``."""
        if not media.has_audio:
            return self.schema().empty_table()
        origin = int(round(media.start * SAMPLE_RATE))
        try:
            with self.torch_threads():
                starts, states = self.states(audio_16k(media), origin, shared.get(STATES, {}))
        except (RuntimeError, ValueError) as error:
            raise StageError(media.path, "acoustic", f"whisper's encoder failed: {error}") from error
        rows, features = pool_states(starts, states, round(self.config.hop / POSITION_SECONDS))
        times = (rows + 0.5) * self.config.hop
        return pa.table([pa.array(times, pa.float64()), features_column(features, self.feature_dim)],
                        schema=self.schema())

    def states(self, audio: np.ndarray, origin: int, known: dict[StatesKey, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray]:
        """(S,) 16-kHz audio whose first sample is sample ``origin`` of the recording -> the encoder states of its
        speech: (P,) start of each position (an index on the recording's 20-ms grid) and (P, d) float32 states.
        Windows found in ``known`` (:func:`extractors.whisper_model.states_key`) are not encoded."""
        from extractors.vad import speech_regions
        from extractors.whisper_regions import merge_regions
        from extractors.whisper_words import window_frames

        if self.config.vad:
            regions = merge_regions(speech_regions(audio, SAMPLE_RATE, min_silence=self.options.vad_min_silence,
                                                   silence_peak=self.options.silence_peak, origin=origin),
                                    self.options)
        else:
            regions = [(0, len(audio))] if len(audio) else []
        pieces = [audio[a:b] for a, b in regions]
        windows, found = [], {}
        for r, piece in enumerate(pieces):
            frames = len(piece) // (SAMPLE_RATE // 100)
            for seek in range(0, frames, WINDOW_FRAMES):
                size = min(WINDOW_FRAMES, frames - seek)
                if size // 2 == 0:
                    continue
                window = (r, seek, size, window_frames(self.options, size))
                windows.append(window)
                state = known.get(self.states_key(piece, seek, window[3]))
                if state is not None and state.shape[0] == size // 2:
                    found[window] = state
        missing = [w for w in windows if w not in found]
        found.update(zip(missing, encode_windows(self.engine, pieces, missing, batch=self.config.batch)))
        d = self.engine.n_state
        starts, states = [np.zeros(0, np.int64)], [np.zeros((0, d), np.float32)]
        for window in windows:
            r, seek, size, _ = window
            first = (origin + regions[r][0]) / SAMPLES_PER_POSITION + seek // 2  # positions on the 20-ms grid
            starts.append(np.floor(first + 0.5).astype(np.int64) + np.arange(size // 2))
            states.append(found[window])
        return np.concatenate(starts), np.concatenate(states)


def encode_windows(engine, pieces: list[np.ndarray], windows: list[Window], *, batch: int) -> list[np.ndarray]:
    """The (size // 2, d) float32 encoder states of each ``(piece, seek, size, window)``: the log-mel of
    ``pieces[piece]`` (:func:`extractors.whisper_words.log_mel`), frames ``[seek, seek + size)`` zero-padded to
    ``window`` frames, through the ``engine``'s encoder (:class:`extractors.whisper_words.Engine`); windows of one
    length ``batch`` at a time."""
    import torch
    import torch.nn.functional as F

    from extractors.whisper_words import log_mel

    mels: dict[int, torch.Tensor] = {}
    out: list[np.ndarray | None] = [None] * len(windows)
    by_length: dict[int, list[int]] = {}
    for i, (_, _, _, window) in enumerate(windows):
        by_length.setdefault(window, []).append(i)
    for window, indices in by_length.items():
        for k in range(0, len(indices), batch):
            group = indices[k:k + batch]
            mel_windows = []
            for i in group:
                piece, seek, size, _ = windows[i]
                if piece not in mels:
                    mels[piece] = log_mel(pieces[piece], engine.n_mels)
                mel_windows.append(F.pad(mels[piece][:, seek:seek + size], (0, window - size)))
            features = engine.encode(torch.stack(mel_windows))  # (B, window / 2, d)
            for j, i in enumerate(group):
                out[i] = features[j, : windows[i][2] // 2].numpy().copy()
    return out


def pool_states(starts: np.ndarray, states: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the states whose start (20-ms grid index) falls in each span of ``pool`` positions.

    starts (P,) int, states (P, d) -> the spans' indices k (R,) int, ascending (positions ``k pool`` ... ``k pool +
    pool - 1``), and their means (R, d) float32; spans without a position have no row."""
    rows = starts // pool
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    keys, first = np.unique(rows, return_index=True)
    if not len(keys):
        return keys.astype(np.int64), np.zeros((0, states.shape[1]), np.float32)
    sums = np.add.reduceat(states[order].astype(np.float64), first, axis=0)
    counts = np.diff(np.append(first, len(rows)))
    return keys.astype(np.int64), (sums / counts[:, None]).astype(np.float32)
