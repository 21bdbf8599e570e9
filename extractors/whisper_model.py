"""What the whisper-based extractors share: one model per process and checkpoint, its identity, and the encoder
states one extractor's pass leaves for another.

The language extractor (:mod:`extractors.language`) and the acoustic ``whisper-encoder``
(:mod:`extractors.whisper_states`) read the same checkpoint: a worker holding both loads it once
(:func:`shared_whisper`). When both run on the same media (``Extractor.extract_shared``), the ASR pass records the
encoder states of every window it encodes under :data:`STATES`, keyed by what determines them
(:func:`states_key`: model, precision, the audio encoded, where the window starts and its length), and the
acoustic extractor takes them instead of encoding again.

torch and whisper are imported only when a model is needed, so that ``import extractors`` stays light.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from extractors.base import Media
from pipeline.files import sha256_bytes, sha256_file

if TYPE_CHECKING:
    import torch
    from whisper.model import Whisper

SAMPLE_RATE = 16000
STATES = "whisper encoder states"
"""The key of ``Extractor.extract_shared``'s ``shared`` under which whisper's encoder states are passed on."""

StatesKey = tuple[str, bool, str, int, int]
_MODELS: dict[tuple[str, int], "Whisper"] = {}
_MODELS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def _sha256(path: str) -> str:
    """The checkpoint's hash, once per process (``model_identity`` is asked on every ``extract``)."""
    return sha256_file(path)


def shared_whisper(checkpoint: Path) -> "Whisper":
    """This process's openai-whisper model of ``checkpoint`` (loaded on first use; again if the file changed).

    Used read-only: the encoder is a plain forward pass, and the word timing's hooks (decoder only) are taken
    under the language extractor's lock."""
    from extractors.whisper_words import load_whisper

    key = (str(Path(checkpoint).resolve()), Path(checkpoint).stat().st_mtime_ns)
    with _MODELS_LOCK:
        if key not in _MODELS:
            for old in [k for k in _MODELS if k[0] == key[0]]:
                del _MODELS[old]
            _MODELS[key] = load_whisper(checkpoint)
        return _MODELS[key]


def audio_16k(media: Media) -> np.ndarray:
    """(S,) float32 16-kHz audio of ``media`` (resampled when decoded at another rate)."""
    audio = np.asarray(media.audio, np.float32)
    if media.sample_rate != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=media.sample_rate, target_sr=SAMPLE_RATE)
    return audio


class WhisperBacked:
    """The whisper model of an extractor whose config has ``model``, ``allow_download``, ``encoder_precision``
    and ``threads`` (see :class:`extractors.language.LanguageConfig`): resolved and loaded on first use."""

    _model = None
    _checkpoint: Path | None = None

    @property
    def checkpoint(self) -> Path:
        """The openai-whisper checkpoint file (resolved offline on first use; converted once if need be)."""
        if self._checkpoint is None:
            from extractors.assets import resolve_whisper

            self._checkpoint = resolve_whisper(self.config.model, allow_download=self.config.allow_download)
        return self._checkpoint

    @property
    def model(self) -> "Whisper":
        """The openai-whisper model (one per process and checkpoint, :func:`shared_whisper`)."""
        if self._model is None:
            self._model = shared_whisper(self.checkpoint)
        return self._model

    def bfloat16(self) -> bool:
        """Whether the encoder runs in bfloat16 (``encoder_precision``, on the model's device)."""
        from extractors.whisper_precision import encoder_bfloat16

        device = self._model.device if self._model is not None else "cpu"  # where load_whisper puts it
        return encoder_bfloat16(device, self.config.encoder_precision)

    def whisper_identity(self) -> dict[str, str]:
        """The checkpoint (name, file, hash), openai-whisper's version and the encoder's precision."""
        return {
            "whisper": f"{self.config.model} ({self.checkpoint.name}, sha256 {_sha256(str(self.checkpoint))[:16]})",
            "openai-whisper": importlib_metadata.version("openai-whisper"),
            "whisper encoder": "bfloat16 (CPU autocast)" if self.bfloat16() else "float32",
        }

    def states_key(self, audio: np.ndarray, seek: int, window: int) -> StatesKey:
        """:func:`states_key` for this extractor's model and precision."""
        return states_key(self.checkpoint, self.bfloat16(), audio, seek, window)

    def states_recorder(self, states: dict[StatesKey, np.ndarray]
                        ) -> Callable[[np.ndarray, int, int, "torch.Tensor"], None]:
        """A callback for the ASR pass (``on_window`` of :func:`extractors.whisper_regions.transcribe_regions`)
        that keeps each encoded window's states, (P, d) float32, in ``states``."""
        def record(audio: np.ndarray, seek: int, window: int, features: "torch.Tensor") -> None:
            states[self.states_key(audio, seek, window)] = features.float().numpy().copy()

        return record

    @contextlib.contextmanager
    def torch_threads(self):
        """torch's CPU threads set to ``config.threads`` (when given) for the duration."""
        import torch

        previous = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def states_key(checkpoint: Path, bfloat16: bool, audio: np.ndarray, seek: int, window: int) -> StatesKey:
    """What determines the encoder states of one window: the model and its precision, the audio whose log-mel is
    cut into windows (a speech region, or the whole audio), the first mel frame of the window (``seek``) and the
    frames encoded (``window``, 800 for a short window, 3000 for 30 s)."""
    digest = sha256_bytes(memoryview(np.ascontiguousarray(audio, np.float32)).cast("B"))
    return str(checkpoint), bfloat16, digest, seek, window
