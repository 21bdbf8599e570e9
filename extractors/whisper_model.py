"""What the whisper-based extractors share: one model per process and checkpoint, the engine that runs it, its
identity, and the encoder states one extractor's pass leaves for another.

Two engines run the same weights (``engine`` in both extractors' configs, so in their config hashes):
"openai-whisper" (PyTorch, :mod:`extractors.whisper_words`, the bundled CTranslate2 weights converted once) and
"ctranslate2" (:mod:`extractors.whisper_ct2_engine`, the weights as shipped, float32 on CPU). Their words agree
(WER and word times measured in docs/benchmarks.md); their encoder states differ by float rounding (more at a
quantised ``compute_type``), so a ``whisper-encoder`` stream is only comparable with one of the same engine and
compute type.

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
from pipeline.files import sha256_bytes

if TYPE_CHECKING:
    import torch
    from whisper.model import Whisper

    from extractors.whisper_words import Engine

SAMPLE_RATE = 16000
STATES = "whisper encoder states"
"""The key of ``Extractor.extract_shared``'s ``shared`` under which whisper's encoder states are passed on."""

ENGINES = ("ctranslate2", "openai-whisper")
COMPUTE_TYPES = ("auto", "int8", "int8_float32", "int16", "float32", "int8_float16", "float16", "bfloat16",
                 "int8_bfloat16")
StatesKey = tuple[str, str, int, int]
_MODELS: dict[tuple[str, int], "Whisper"] = {}
_MODELS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def _sha256(path: str) -> str:
    """The checkpoint's hash, once per process (``model_identity`` is asked on every ``extract``), from the record
    its conversion left (:func:`extractors.assets.checkpoint_sha256`): the checkpoint is read once, by the load."""
    from extractors.assets import checkpoint_sha256

    return checkpoint_sha256(path)


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


@functools.lru_cache(maxsize=8)
def _ct2_identity(model: str, compute_type: str) -> dict[str, str]:
    """The CTranslate2 model (name, fingerprint of its files) and engine (version, compute type, device)."""
    from extractors.assets import resolve_whisper_ct2
    from extractors.whisper_ct2 import directory_fingerprint
    from extractors.whisper_ct2_model import device_and_compute_type

    fingerprints = "+".join(directory_fingerprint(d) for d in resolve_whisper_ct2(model))
    device, compute_type = device_and_compute_type(compute_type)
    return {"whisper": f"{model} (CTranslate2, fingerprint {fingerprints})",
            "whisper engine": f"ctranslate2 {importlib_metadata.version('ctranslate2')}, {compute_type} on {device}"}


def check_engine(engine: str, compute_type: str) -> None:
    """A ValueError naming the choices unless ``engine`` is one of ``ENGINES`` and ``compute_type`` one of
    ``COMPUTE_TYPES``."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if compute_type not in COMPUTE_TYPES:
        raise ValueError(f"compute_type {compute_type!r} is not one of {', '.join(COMPUTE_TYPES)}")


def audio_16k(media: Media) -> np.ndarray:
    """(S,) float32 16-kHz audio of ``media`` (resampled when decoded at another rate)."""
    audio = np.asarray(media.audio, np.float32)
    if media.sample_rate != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=media.sample_rate, target_sr=SAMPLE_RATE)
    return audio


class WhisperBacked:
    """The whisper model of an extractor whose config has ``model``, ``engine``, ``compute_type``,
    ``allow_download``, ``encoder_precision`` and ``threads`` (see :class:`extractors.language.LanguageConfig`):
    resolved and loaded on first use."""

    _model = None
    _checkpoint: Path | None = None
    _engine = None

    @property
    def engine(self) -> "Engine":
        """The engine that encodes, decodes and aligns (one model per process and settings)."""
        if self._engine is None:
            if self.config.engine == "ctranslate2":
                from extractors.assets import resolve_whisper_ct2
                from extractors.whisper_ct2_engine import shared_ct2_engine

                self._engine = shared_ct2_engine(resolve_whisper_ct2(self.config.model),
                                                 compute_type=self.config.compute_type, threads=self.config.threads)
            else:
                from extractors.whisper_words import OpenAIWhisperEngine

                self._engine = OpenAIWhisperEngine(self.model, bfloat16=self.bfloat16())
        return self._engine

    def load(self) -> None:
        """The schema (word vectors, model identity), then the engine with its weights."""
        super().load()
        self.engine  # noqa: B018 (loads it)

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
        """The engine, the model (name, file, hash), the engine's version and its precision."""
        if self.config.engine == "ctranslate2":
            return _ct2_identity(self.config.model, self.config.compute_type)
        return {
            "whisper": f"{self.config.model} ({self.checkpoint.name}, sha256 {_sha256(str(self.checkpoint))[:16]})",
            "openai-whisper": importlib_metadata.version("openai-whisper"),
            "whisper encoder": "bfloat16 (CPU autocast)" if self.bfloat16() else "float32",
        }

    def states_key(self, audio: np.ndarray, seek: int, window: int) -> StatesKey:
        """:func:`states_key` for this extractor's engine, model and precision."""
        if self.config.engine == "ctranslate2":
            models = self.whisper_identity()
            engine = f"{models['whisper']} {models['whisper engine']}"
        else:
            engine = f"openai-whisper {self.checkpoint} {'bfloat16' if self.bfloat16() else 'float32'}"
        return states_key(engine, audio, seek, window)

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


def states_key(engine: str, audio: np.ndarray, seek: int, window: int) -> StatesKey:
    """What determines the encoder states of one window: the engine, model and precision (one string), the audio
    whose log-mel is cut into windows (a speech region, or the whole audio), the first mel frame of the window
    (``seek``) and the frames encoded (``window``, 800 for a short window, 3000 for 30 s)."""
    digest = sha256_bytes(memoryview(np.ascontiguousarray(audio, np.float32)).cast("B"))
    return engine, digest, seek, window
