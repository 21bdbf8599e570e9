"""The one extractor interface and its registry.

An extractor turns a decoded :class:`Media` into one Arrow table (one row per word or per frame). Every stream
has a ``features`` column, a fixed-size list of float32 of length ``feature_dim`` that the model consumes, named
column by column in ``feature_names``. Models are loaded lazily, once per extractor instance, so a Dask worker
that keeps one instance per configuration loads each model once.
"""
from __future__ import annotations

import abc
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from pipeline.files import sha256_text

DEFAULT_EXTRACTORS: dict[str, str] = {"language": "whisper-glove", "acoustic": "whisper-encoder",
                                      "visual": "mediapipe", "voice": "silero-vad"}
"""The extractor of each stream when none is named (acoustic: "whisper-encoder", "librosa" or "egemaps";
docs/features.md compares them: whisper's encoder states won the RAVDESS cross-validation, docs/benchmarks.md).
``voice`` (speech and loudness, :mod:`extractors.voice`) is what annotation reads, not a model input."""


@dataclass
class Media:
    """A video (or audio file) decoded once: 16 kHz mono audio and frames sampled at a fixed rate.

    ``audio`` is (S,) float32 in [-1, 1] (empty when the file has no audio track); ``frames`` is (N, H, W, 3) uint8
    RGB with ``frame_times`` (N,) seconds (N = 0 when the file has no video track). ``warnings`` collects what the
    decoder wants a user to know (a missing stream, say). ``start`` is the time of ``audio[0]`` in the source video
    (non-zero after :meth:`crop`), so every extractor reports times relative to the original video.
    """

    path: str
    duration: float
    audio: np.ndarray
    sample_rate: int
    frames: np.ndarray
    frame_times: np.ndarray
    native_fps: float | None = None
    warnings: list[str] = field(default_factory=list)
    start: float = 0.0

    @property
    def has_audio(self) -> bool:
        return self.audio.size > 0

    @property
    def has_video(self) -> bool:
        return len(self.frame_times) > 0

    def crop(self, start: float, end: float | None) -> "Media":
        """The part of this media in [start, end) seconds; times stay relative to the original video."""
        end = self.start + self.duration if end is None else min(end, self.start + self.duration)
        a, b = (int(round((t - self.start) * self.sample_rate)) for t in (start, end))
        keep = (self.frame_times >= start) & (self.frame_times < end)
        return Media(self.path, end - start, self.audio[max(a, 0):b], self.sample_rate, self.frames[keep],
                     self.frame_times[keep], self.native_fps, list(self.warnings), start=start)


@dataclass(frozen=True)
class ExtractorConfig:
    """Base of every extractor's options; subclasses are frozen dataclasses with documented fields."""

    LEGACY: ClassVar[dict[str, Any]] = {}
    """The options added since runs began to record their extractors (2026-12-05), each with the value that does
    what the extractor did before the option existed: what a recorded config without that key means
    (:meth:`from_record`). A new option whose default changes the output gets its entry here."""

    @classmethod
    def from_record(cls, values: Mapping[str, Any] | None, extractor: str = "") -> "ExtractorConfig":
        """The config that a stream's metadata or a run recorded as JSON (``values``; None when only the extractor's
        name was recorded: the defaults of then, :attr:`LEGACY` over today's).

        Raises:
            ValueError: one line naming the key, for a key this class does not know, a value of the wrong type, or a
                key the record lacks that :attr:`LEGACY` does not cover (a record older than what it reproduces).
        """
        if values is None:
            return cls(**cls.LEGACY)
        name, known = extractor or cls.__name__, [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{name} has no option {unknown[0]!r} (its options: {', '.join(known)})")
        missing = [k for k in known if k not in values and k not in cls.LEGACY]
        if missing:
            raise ValueError(f"the {name} config was recorded before its option {missing[0]!r} existed, and what "
                             "the extractor did then is not declared (LEGACY)")
        for key, value in values.items():
            _check_option(name, key, value, cls)
        return cls(**{**{k: v for k, v in cls.LEGACY.items() if k not in values}, **values})


def _check_option(extractor: str, key: str, value: Any, config: type[ExtractorConfig]) -> None:
    """An option's value has its field's type (ints for floats are fine), and numbers are finite."""
    hint = typing.get_type_hints(config)[key]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        option = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return
        elif option is int and isinstance(value, int) and not isinstance(value, bool):
            return
        elif option in (str, bool, dict) and isinstance(value, option):
            return
        elif option in (tuple, list) and isinstance(value, (tuple, list)):  # JSON gives lists
            return
        elif option is Any:
            return
    raise ValueError(f"extractor {extractor!r}: option {key} = {value!r} is not a {hint}")


class Extractor(abc.ABC):
    """One modality's feature extractor: ``name``, a config dataclass, ``extract()``, frame shift, feature dim."""

    name: ClassVar[str]
    modality: ClassVar[str]  # "language" | "acoustic" | "visual" | "voice"
    config_class: ClassVar[type[ExtractorConfig]] = ExtractorConfig
    reuses: ClassVar[tuple[str, ...]] = ()
    """Intermediate results another extractor of the same media may leave for this one (:meth:`extract_shared`)."""
    chunk_margin: ClassVar[bool] = True
    """A frame stream of a long video's chunk is computed with the chunk's audio margin around it (its rows outside
    the chunk dropped), so that frames near a cut see what they would see in the whole video. False: on the chunk
    alone (``whisper-encoder``, whose windows are the language extractor's speech regions of the chunk)."""

    @property
    def uses_numba(self) -> bool:
        """Whether it compiles numba kernels on first use, whose cache files must be complete before several worker
        processes load them (:func:`workflows.cluster.local_client`'s ``warm_numba``)."""
        return False

    def __init__(self, config: ExtractorConfig | None = None, **overrides: Any):
        config = config or self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"extractor {self.name!r} takes a {self.config_class.__name__}, "
                            f"not a {type(config).__name__}")
        known = [f.name for f in fields(config)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"extractor {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                             f"its options are {known}")
        for key, value in overrides.items():
            _check_option(self.name, key, value, type(config))
        self.config = type(config)(**{**asdict(config), **overrides}) if overrides else config

    @property
    @abc.abstractmethod
    def frame_shift(self) -> float | None:
        """Seconds between consecutive rows, or None for event streams (words)."""

    @property
    @abc.abstractmethod
    def feature_names(self) -> list[str]:
        """The name of each entry of the ``features`` vector."""

    @property
    def feature_dim(self) -> int:
        return len(self.feature_names)

    @abc.abstractmethod
    def schema(self) -> pa.Schema:
        """The Arrow schema of ``extract()``'s table, with :meth:`metadata` attached."""

    @abc.abstractmethod
    def extract(self, media: Media) -> pa.Table:
        """Features of one decoded media; an empty table (same schema) when the modality is missing."""

    def extract_shared(self, media: Media, shared: dict[str, Any]) -> pa.Table:
        """:meth:`extract` beside other extractors of the same media, which run first unless they ``reuses``.

        ``shared`` has an entry (a dict) for each name in the ``reuses`` of those extractors: one that computes such
        a result fills the entry, one that reuses it reads it (whisper's encoder states, left by the language
        extractor's ASR pass for the ``whisper-encoder`` acoustic stream). The output equals :meth:`extract`'s up to
        float rounding. By default ``shared`` is ignored."""
        return self.extract(media)

    def model_identity(self) -> dict[str, str]:
        """Names, versions and hashes of the models and libraries behind the features (for provenance)."""
        return {}

    def load(self) -> None:
        """Load the models now rather than in the first :meth:`extract`: a worker calls it in a background thread
        while it decodes its first window (:func:`workflows.extract.worker.worker_extractor`). By default the
        schema is built (with the assets and model identities it names); extractors with models load them too."""
        self.schema()

    def metadata(self) -> dict[str, str]:
        """Schema metadata: extractor, config, feature names, frame shift, model identities."""
        return {
            "extractor": self.name,
            "modality": self.modality,
            "config": json.dumps(self.config_record(), sort_keys=True),
            "config_hash": self.config_hash(),
            "feature_names": json.dumps(self.feature_names),
            "frame_shift": json.dumps(self.frame_shift),
            "models": json.dumps(self.model_identity(), sort_keys=True),
        }

    def config_record(self) -> dict[str, Any]:
        """The config as stream files and runs record it: JSON values (rebuilt by
        :meth:`ExtractorConfig.from_record`)."""
        return json.loads(json.dumps(asdict(self.config), default=str))

    def config_hash(self) -> str:
        """Stable hash of what determines the output: extractor name and config."""
        blob = json.dumps({"name": self.name, "config": asdict(self.config)}, sort_keys=True, default=str)
        return sha256_text(blob)[:16]


EXTRACTORS: dict[str, type[Extractor]] = {}


def register(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator: make an extractor available by name to the CLI and the workflows."""
    if cls.name in EXTRACTORS:
        raise ValueError(f"extractor {cls.name!r} registered twice ({EXTRACTORS[cls.name].__qualname__} and "
                         f"{cls.__qualname__})")
    EXTRACTORS[cls.name] = cls
    return cls


def available(modality: str | None = None) -> list[str]:
    """Registered extractor names, optionally of one modality."""
    import extractors  # noqa: F401  (importing the package registers the built-in extractors)

    return sorted(n for n, c in EXTRACTORS.items() if modality in (None, c.modality))


def create(name: str, config: ExtractorConfig | None = None, **overrides: Any) -> Extractor:
    """Instantiate a registered extractor by name."""
    names = available()
    if name not in EXTRACTORS:
        raise KeyError(f"unknown extractor {name!r}; choose one of {names}")
    return EXTRACTORS[name](config, **overrides)


def frame_schema(dim: int, metadata: dict[str, str]) -> pa.Schema:
    """The schema of a frame stream: ``time`` (float64 s) and ``features`` (float32, ``dim`` per row)."""
    return pa.schema([pa.field("time", pa.float64()), pa.field("features", pa.list_(pa.float32(), dim))],
                     metadata=metadata)


def features_column(vectors: np.ndarray, dim: int) -> pa.FixedSizeListArray:
    """(N, dim) float array -> Arrow fixed-size list column (zero-copy where possible)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
