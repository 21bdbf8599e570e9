"""Where the speech is and how loud the voice is (``silero-vad``, the ``voice`` stream): what `mcr predict` cuts its
rows from and matches each face's mouth against. It is computed beside the other streams from the audio the
extraction already decoded, so annotation never decodes a video again; it is not a model input.

Rows, one every ``hop`` (10 ms) of the recording's grid: ``time`` (float64 s, the centre of the block of samples
``[k hop, (k + 1) hop)`` of the video's time) and ``features`` ``[level_db, speech]``: the block's RMS level in dB
(floored at -100) and 1.0 when its centre lies in speech found by Silero VAD, else 0.0. A file without audio gives
an empty table.

The detector is Silero VAD (the ``silero-vad`` wheel: its weights ship inside it, it runs offline on torch, which the
model needs anyway). It was chosen by measurement, on the 6 CREMA-D clips joined with 1-s gaps (18.9 s; clips found /
regions / seconds of speech outside the clips), against an energy + voicing detector on the librosa acoustic stream
and WebRTC's (webrtcvad-wheels, mode 3):

=====================  ==============  ====================  ==========  ===========================
audio                  silero-vad      acoustic voicing      webrtc 3    whisper's words alone
=====================  ==============  ====================  ==========  ===========================
clean                  6/6, 6, 0 s     6/6, 7, 0.8 s         6/6, 6, 0   5/6 (one clip has no word)
+ white noise 20 dB    6/6, 6, 0 s     6/6, 6, 0 s           6/6, 7, 0
+ white noise 10 dB    6/6, 6, 0 s     5/6                   6/6, 6, 0
+ white noise 5 dB     6/6, 6, 0 s     4/6                   6/6, 7, 0
+ chord at -10 dB      6/6, 6, 0 s     5/6                   6/6, 7, 0
chord alone (no voice) 0 s             19 s (all of it)      0.09 s
=====================  ==============  ====================  ==========  ===========================

Silero alone found every clip in every condition, merged none and called no music or noise speech; it costs
~0.5 s per 19 s of audio on one CPU thread (~40x real time). (Whisper's own energy gate, which only decides what
whisper hears, is :mod:`extractors.vad`.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from extractors.base import Extractor, ExtractorConfig, Media, features_column, frame_schema, register
from pipeline.errors import StageError

DETECTOR = "silero-vad"
FEATURES = ("level_db", "speech")
SILERO_WINDOW = 512  # samples Silero scores at a time at 16 kHz: less audio holds no speech


@dataclass(frozen=True)
class VoiceConfig(ExtractorConfig):
    """Options of the voice stream (Silero VAD's own defaults)."""

    hop: float = 0.01
    """Seconds between rows."""
    threshold: float = 0.5
    """Silero's speech probability above which a 32-ms window is speech."""
    min_speech: float = 0.25
    """Shortest speech kept, seconds."""
    min_silence: float = 0.1
    """Shortest pause that ends a stretch of speech, seconds."""
    pad: float = 0.03
    """Seconds added to both ends of each stretch of speech."""


@register
class VoiceExtractor(Extractor):
    """Loudness and Silero VAD's speech of ``Media.audio``, one row per ``hop``: ``features`` (N, 2)."""

    name = DETECTOR
    modality = "voice"
    config_class = VoiceConfig

    def __init__(self, config: VoiceConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        self._model = None

    @property
    def frame_shift(self) -> float:
        return self.config.hop

    @property
    def feature_names(self) -> list[str]:
        return list(FEATURES)

    def schema(self) -> pa.Schema:
        return frame_schema(self.feature_dim, self.metadata())

    def metadata(self) -> dict[str, str]:
        return {**super().metadata(), "detector": DETECTOR}

    def model_identity(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"silero-vad": version("silero-vad")}

    def load(self) -> None:
        """The schema and Silero's model (:meth:`Extractor.load`)."""
        super().load()
        self.model  # noqa: B018  (loads it)

    @property
    def model(self):
        """Silero's TorchScript model inside the wheel (nothing is downloaded), loaded on first use."""
        if self._model is None:
            import warnings

            from silero_vad import load_silero_vad

            with warnings.catch_warnings():  # torch 2.10+: "torch.jit.load is deprecated", about silero's loader
                warnings.simplefilter("ignore", FutureWarning)
                self._model = load_silero_vad()
        return self._model

    def extract(self, media: Media) -> pa.Table:
        """(N, 2) level and speech at the centres of the recording's ``hop`` blocks; empty without audio."""
        if not media.has_audio:
            return self.schema().empty_table()
        step = max(1, int(round(self.config.hop * media.sample_rate)))
        origin = int(round(media.start * media.sample_rate))
        skip = (-origin) % step  # samples before the first block of the recording's grid
        n = max(0, (len(media.audio) - skip) // step)
        blocks = np.asarray(media.audio[skip: skip + n * step], np.float64).reshape(n, step)
        level = 10 * np.log10(np.maximum(np.mean(blocks * blocks, axis=1), 1e-10))
        centres = skip + np.arange(n) * step + step / 2  # samples of media.audio
        try:
            spans = self.speech(media.audio, media.sample_rate)
        except (RuntimeError, ValueError) as error:
            raise StageError(media.path, "voice", f"Silero VAD failed: {error}") from error
        speech = np.zeros(n, bool)
        if spans:
            starts, ends = np.array(spans, np.float64).T
            inside = np.searchsorted(starts, centres, side="right") - 1
            speech = (inside >= 0) & (centres < ends[np.maximum(inside, 0)])
        times = (origin + skip + np.arange(n) * step + step / 2) / media.sample_rate
        features = np.stack([level, speech.astype(np.float64)], axis=1)
        return pa.table([pa.array(times, pa.float64()), features_column(features, self.feature_dim)],
                        schema=self.schema())

    def speech(self, audio: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
        """[(first sample, stop sample), ...] of the speech in ``audio`` (mono float, 16 kHz), in order."""
        import torch
        from silero_vad import get_speech_timestamps

        if len(audio) < SILERO_WINDOW:
            return []
        c = self.config
        with torch.no_grad():
            stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio, np.float32)), self.model,
                                           sampling_rate=sample_rate, threshold=c.threshold,
                                           min_speech_duration_ms=round(c.min_speech * 1000),
                                           min_silence_duration_ms=round(c.min_silence * 1000),
                                           speech_pad_ms=round(c.pad * 1000))
        return [(d["start"], d["end"]) for d in stamps]
