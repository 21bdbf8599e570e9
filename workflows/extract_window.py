"""On a worker: decode one time window of a video once and run the extractors on it, in bounded memory.

The frames never pile up: the decoder hands them to the visual extractor in batches of ``batch_frames`` while it
goes on decoding, and only the audio of the window (4 bytes per sample: 2 MB for 30 s) is kept for the audio
streams. A window is a whole short video, or one chunk of a long one (:mod:`workflows.chunks`).

Models are created once per worker process and configuration (:func:`worker_extractor`) and kept for every
window that worker runs. They load in background threads, one per extractor, while the first window decodes
(:meth:`extractors.base.Extractor.load`); for a worker in the client's process, the run starts them as soon as
it knows there are videos to extract (:func:`preload`).
"""
from __future__ import annotations

import math
import platform
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from extractors.base import Extractor, ExtractorConfig, Media
from extractors.face_tracks import FaceTracker, retrack
from workflows.chunks import ChunkConfig, stream_hash

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
        with _locked(old):
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


def _locked(extractor: Extractor) -> threading.Lock:
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


@dataclass
class WindowResult:
    """The streams of one window: tables and metadata by modality, errors by modality, and what was decoded."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per modality, and "decode"
    end: float = 0.0  # where the decoded window ends (the video's duration for the last window)
    native_fps: float | None = None
    warnings: list[str] = field(default_factory=list)  # a missing audio or video track (Media.warnings)


def extract_window(path: str, specs: list[ExtractorSpec], *, start: float = 0.0, end: float | None = None,
                   decode_options: dict[str, Any] | None = None, margin: float = 0.0,
                   batch_frames: int = 50) -> WindowResult:
    """Decode ``[start, end)`` of ``path`` once and run every spec's extractor on it.

    ``margin``: audio decoded on both sides for the frame-based audio streams (acoustic, voice), whose rows outside
    the window are then dropped; the language stream gets exactly the window. Extractor failures are recorded per
    modality; a decoding failure raises (:class:`pipeline.errors.MediaError`, stage ``decode``).
    """
    from extractors.media import decode

    out = WindowResult()
    extractors: dict[str, Extractor] = {}
    for spec in specs:
        try:
            extractors[spec.modality], created = worker_extractor(spec)
        except Exception as exc:
            out.errors[spec.modality] = f"{type(exc).__name__}: {exc}"
            continue
        if created:
            out.loads.append(spec.name)
        out.seconds[spec.modality] = 0.0
    visual = extractors.get("visual")
    pieces: list[pa.Table] = []
    faces = FaceTracker()  # one face numbering for every batch of frames of the window

    def analyse(piece: Media) -> None:
        if "visual" in out.errors:
            return
        began = time.perf_counter()
        try:
            with _locked(visual):
                pieces.append(retrack(visual.extract(piece), faces))
        except Exception as exc:
            out.errors["visual"] = _message(exc)
        out.seconds["visual"] += time.perf_counter() - began

    audio_margin = margin if any(m != "visual" and e.frame_shift and e.chunk_margin
                                 for m, e in extractors.items()) else 0.0
    lo = max(start - audio_margin, 0.0)
    hi = None if end is None else end + audio_margin
    began = time.perf_counter()
    # no extractor at all: decoded (frames dropped at once) only for the duration
    sink = analyse if visual is not None else (lambda piece: None) if not specs else None
    media = decode(path, **(decode_options or {}), start=lo, end=hi, frame_window=(start, end),
                   video=sink is not None, on_frames=sink, batch_frames=batch_frames, warn=False)
    out.seconds["decode"] = time.perf_counter() - began - out.seconds.get("visual", 0.0)
    out.end, out.native_fps, out.warnings = media.start + media.duration, media.native_fps, list(media.warnings)
    spec_of = {s.modality: s for s in specs}
    shared = {name: {} for extractor in extractors.values() for name in extractor.reuses}  # Extractor.extract_shared
    for modality, extractor in sorted(extractors.items(), key=lambda item: bool(item[1].reuses)):  # producers first
        if modality in out.errors:
            continue
        began = time.perf_counter()
        try:
            with _locked(extractor):
                if modality == "visual":
                    table = pa.concat_tables(pieces) if pieces else extractor.extract(_no_frames(media))
                elif extractor.frame_shift and extractor.chunk_margin and (lo < start or hi is not None):
                    table = _frames_in(extractor.extract_shared(_on_grid(media, extractor.frame_shift), shared),
                                       start, end)
                else:
                    table = extractor.extract_shared(media.crop(start, end) if (lo, hi) != (start, end) else media,
                                                     shared)
                    if extractor.frame_shift and (start > 0 or end is not None):  # a row of a span across the cut
                        table = _frames_in(table, start, end)
            out.tables[modality] = table
            out.metadata[modality] = spec_of[modality].metadata(extractor)
        except Exception as exc:  # record it, go on with the other modalities of this window
            out.errors[modality] = _message(exc)
        out.seconds[modality] += time.perf_counter() - began
    return out


def _message(exc: Exception) -> str:
    from pipeline.errors import StageError

    return exc.message if isinstance(exc, StageError) else f"{type(exc).__name__}: {exc}"


def _no_frames(media: Media) -> Media:
    return Media(media.path, media.duration, media.audio[:0], media.sample_rate, media.frames[:0],
                 media.frame_times[:0], media.native_fps, list(media.warnings), start=media.start)


def _on_grid(media: Media, hop: float) -> Media:
    """The media from the first multiple of ``hop`` on, so that frame times ``start + k hop`` are the video's grid."""
    first = math.ceil(media.start / hop - 1e-9) * hop
    return media.crop(first, None) if first > media.start + 1e-9 else media


def _frames_in(table: pa.Table, start: float, end: float | None) -> pa.Table:
    """Rows whose ``time`` lies in ``[start, end)`` (a tolerance of 1 us: neighbouring windows share a bound)."""
    time_column = table.column("time")
    keep = pc.greater_equal(time_column, start - 1e-6)
    if end is not None:
        keep = pc.and_(keep, pc.less(time_column, end - 1e-6))
    return table.filter(keep)
