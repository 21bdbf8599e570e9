"""On a worker: the extractors it keeps, one per configuration, with their models loaded once.

Models are created once per worker process and configuration (:func:`worker_extractor`) and kept for every
window that worker runs (:mod:`workflows.extract.window`). They load in background threads, one per extractor
(:meth:`extractors.base.Extractor.load`), started on every worker as soon as the run knows there are videos to
extract (:func:`preload`), so that they load while the first video is hashed, planned and decoded.
"""
from __future__ import annotations

import platform
import threading
from dataclasses import dataclass
from typing import Iterable

from extractors.base import Extractor, ExtractorConfig
from workflows.extract.chunks import ChunkConfig, stream_hash

VERSION_PACKAGES = ("mcr-emotion", "numpy", "pyarrow", "av", "librosa", "openai-whisper", "gensim", "mediapipe",
                    "py-feat", "torch", "dask", "distributed")
AUDIO_MODALITIES = ("language", "acoustic", "voice")  # computed from the audio: they depend on where a video is cut


@dataclass(frozen=True)
class ExtractorSpec:
    """What a worker needs to rebuild one extractor, and the config hash its stream files record.

    ``config_hash`` is the stream's: the extractor's own hash (``extractor_hash``), combined with the chunking
    config for the audio streams (``chunking`` set), since where a long video is cut changes them.
    """

    modality: str
    name: str
    config: ExtractorConfig
    config_hash: str
    extractor_hash: str = ""
    chunking: ChunkConfig | None = None

    @classmethod
    def of(cls, extractor: Extractor, chunking: ChunkConfig | None = None) -> "ExtractorSpec":
        own = extractor.config_hash()
        if chunking is None or extractor.modality not in AUDIO_MODALITIES:
            return cls(extractor.modality, extractor.name, extractor.config, own, own)
        return cls(extractor.modality, extractor.name, extractor.config, stream_hash(own, chunking), own, chunking)

    def metadata(self, extractor: Extractor) -> dict[str, str]:
        """The extractor's schema metadata, with the stream's config hash (and the chunking that is part of it)."""
        meta = {**extractor.metadata(), "config_hash": self.config_hash}
        if self.chunking is not None:
            meta["chunking"] = self.chunking.to_json()
        return meta


_WORKER_EXTRACTORS: dict[tuple[str, str], Extractor] = {}  # one instance (and model) per worker process and config
_PRELOADED: set[tuple[str, str]] = set()  # created by preload(), not yet handed to a task (which counts the load)
_LOCKS: dict[int, threading.Lock] = {}  # per extractor instance: a worker with several threads shares its models
_REGISTRY_LOCK = threading.Lock()
_VERSIONS: dict[str, str] = {}


def worker_extractor(spec: ExtractorSpec, *, preloading: bool = False) -> tuple[Extractor, bool]:
    """This process's extractor for ``spec``, created on first use with its models loading in a background thread;
    True when it was created for this task (or by :func:`preload` and this is the first task to get it)."""
    from extractors.base import create

    own = spec.extractor_hash or spec.config_hash
    key = (spec.name, own)
    with _REGISTRY_LOCK:
        if key in _WORKER_EXTRACTORS:
            if preloading or key not in _PRELOADED:
                return _WORKER_EXTRACTORS[key], False
            _PRELOADED.discard(key)
            return _WORKER_EXTRACTORS[key], True
        extractor = create(spec.name, spec.config)
        if extractor.config_hash() != own:
            raise RuntimeError(f"{spec.name}: the config hash differs on this worker; install the same mcr-emotion "
                               "version on the client and every worker")
        # a new config replaces the old model
        replaced = [_WORKER_EXTRACTORS.pop(k) for k in [k for k in _WORKER_EXTRACTORS if k[0] == spec.name]]
        _WORKER_EXTRACTORS[key] = extractor
        _LOCKS[id(extractor)] = lock = threading.Lock()
        if preloading:
            _PRELOADED.add(key)
        lock.acquire()  # held by the loading thread until the models are in: an extract waits for them
    for old in replaced:  # released now, not by the garbage collector (MediaPipe's finaliser can hang)
        with locked(old):
            getattr(old, "close", lambda: None)()
    # not a daemon: a process that ends while torch loads a model in a daemon thread aborts ("terminate called
    # without an active exception", seen when a rerun skips every video), so the exit waits for the load
    threading.Thread(target=_load, args=(extractor, lock), name=f"load {spec.name}", daemon=False).start()
    return extractor, True


def _load(extractor: Extractor, lock: threading.Lock) -> None:
    try:
        extractor.load()
    except Exception:  # the first extract meets the same error and records it for its video
        pass
    finally:
        lock.release()


def preload(specs: Iterable[ExtractorSpec]) -> None:
    """Create this process's extractors for ``specs`` and start loading their models, for the Dask workers that
    run in this process (an in-process cluster): the models load while the first video is hashed and decoded."""
    for spec in specs:
        worker_extractor(spec, preloading=True)


def locked(extractor: Extractor) -> threading.Lock:
    """The lock of a worker's extractor: models are not thread-safe (whisper's word timing hooks its modules), so
    a worker with several threads runs one call of each extractor at a time (different extractors in parallel)."""
    with _REGISTRY_LOCK:
        return _LOCKS.setdefault(id(extractor), threading.Lock())


def library_versions() -> dict[str, str]:
    if not _VERSIONS:
        from importlib.metadata import PackageNotFoundError, version

        _VERSIONS["python"] = platform.python_version()
        for name in VERSION_PACKAGES:
            try:
                _VERSIONS[name] = version(name)
            except PackageNotFoundError:
                pass
    return dict(_VERSIONS)
