"""Extract a corpus into a :class:`FeatureStore` with Dask: one task per video, resumable and fault-tolerant.

Each task hashes its source, decodes it once, runs the extractors whose output is missing or stale and writes
each stream atomically, then returns the video's ``videos.parquet`` row. The client writes that row as soon as it
arrives, so a run killed at any moment loses at most its in-flight videos; their partial streams are either
whole files or hidden temporaries (removed on the rerun). A stream file carries its config hash, source hash and
row count, and only the file is trusted: a file rewritten just before a kill, whose row still describes the old
one, is judged by what it holds, and the row is read back from the files.

Only the :class:`extractors.base.Extractor` interface is used: any registered extractor of a modality works.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from extractors.base import DEFAULT_EXTRACTORS, Extractor, ExtractorConfig
from pipeline.arrays import MODALITIES
from pipeline.corpus import Corpus, check_segment_id, segments_of
from pipeline.errors import MediaNotFoundError, StageError
from pipeline.files import sha256_file
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore, check_video_id, plain_value
from workflows.cluster import current_client

if TYPE_CHECKING:
    from distributed import Client

VERSION_PACKAGES = ("mcr-emotion", "numpy", "pyarrow", "av", "librosa", "openai-whisper", "gensim", "mediapipe",
                    "py-feat", "torch", "dask", "distributed")


@dataclass(frozen=True)
class ExtractorSpec:
    """What a worker needs to rebuild one extractor: its registry name, config and the config's hash."""

    modality: str
    name: str
    config: ExtractorConfig
    config_hash: str

    @classmethod
    def of(cls, extractor: Extractor) -> "ExtractorSpec":
        return cls(extractor.modality, extractor.name, extractor.config, extractor.config_hash())


@dataclass
class ExtractSummary:
    """What one ``extract_corpus`` run did. ``media_seconds`` counts the videos extracted in this run.

    ``skipped`` counts videos that were up to date; ``skipped_files`` lists the files the corpus scan passed over
    (``path``, ``reason``: hidden, not a video or audio file, ...), which never reached extraction.
    """

    done: int = 0
    skipped: int = 0
    failed: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)  # path, reason
    failures: list[dict[str, Any]] = field(default_factory=list)  # video_id, path, stage, message
    computed: dict[str, int] = field(default_factory=dict)        # modality -> videos (re)computed
    media_seconds: float = 0.0
    wall_seconds: float = 0.0
    workers: int = 0
    model_loads: int = 0                                          # extractor instances created on workers

    @property
    def throughput(self) -> float:
        """Seconds of media extracted per second of wall time (a multiple of real time)."""
        return self.media_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed


# ----------------------------------------------------------------------------------------- worker side
_WORKER_EXTRACTORS: dict[tuple[str, str], Extractor] = {}  # one instance (and model) per worker process and config
_VERSIONS: dict[str, str] = {}


def worker_extractor(spec: ExtractorSpec) -> tuple[Extractor, bool]:
    """This process's extractor for ``spec`` (created on first use); True when it was created now."""
    from extractors.base import create

    key = (spec.name, spec.config_hash)
    if key in _WORKER_EXTRACTORS:
        return _WORKER_EXTRACTORS[key], False
    extractor = create(spec.name, spec.config)
    if extractor.config_hash() != spec.config_hash:
        raise RuntimeError(f"{spec.name}: the config hash differs on this worker; install the same mcr-emotion "
                           "version on the client and every worker")
    for old in [k for k in _WORKER_EXTRACTORS if k[0] == spec.name]:  # a new config replaces the old model
        del _WORKER_EXTRACTORS[old]
    _WORKER_EXTRACTORS[key] = extractor
    return extractor, True


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


def stream_columns(store: FeatureStore, video_id: str) -> dict[str, Any]:
    """The video's ``<m>_extractor``, ``<m>_config_hash``, ``<m>_rows`` and ``models`` as its stream files say
    (their footers), so that ``videos.parquet`` never vouches for a file that holds something else."""
    columns: dict[str, Any] = {}
    models = {}
    for m in MODALITIES:
        info = store.stream_info(m, video_id)
        columns[f"{m}_extractor"] = info.extractor if info else None
        columns[f"{m}_config_hash"] = info.config_hash if info else None
        columns[f"{m}_rows"] = info.rows if info else None
        if info is not None:
            try:
                identity = json.loads(info.metadata.get("models") or "{}")
            except json.JSONDecodeError:
                identity = {}
            models[m] = {"extractor": info.extractor, **(identity if isinstance(identity, dict) else {})}
    columns["models"] = json.dumps(models, sort_keys=True)
    return columns


def _stale_specs(store: FeatureStore, video_id: str, sha256: str, specs: tuple[ExtractorSpec, ...],
                 same_source: bool, force: bool) -> list[ExtractorSpec]:
    """The specs whose stream file is not current (:meth:`StreamInfo.is_current`); streams of another source are
    deleted first, whatever their modality, so that no file outlives the source it was extracted from."""
    infos = {m: store.stream_info(m, video_id) for m in MODALITIES}
    for m, info in infos.items():
        # a file marked with another source, or an unmarked one (older version) when the source changed
        if info is not None and info.source_sha256 != sha256 and (info.source_sha256 or not same_source):
            store.delete_stream(m, video_id)
            infos[m] = None
    return [s for s in specs if force or infos[s.modality] is None
            or not infos[s.modality].is_current(config_hash=s.config_hash, source_sha256=sha256)]


def extract_video(source: VideoSource, store: FeatureStore, specs: tuple[ExtractorSpec, ...],
                  previous: dict[str, Any] | None, *, force: bool = False,
                  decode_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One video, on a worker: the new ``videos.parquet`` row, plus ``_outcome``, ``_computed``, ``_loads``.

    A stream is up to date when its file says so (:func:`pipeline.store.stream_is_current`: config hash, source
    hash, row count), whatever ``previous`` (the video's last row) claims; the row's stream columns are read back
    from the files. Never raises for a bad input: the failing stage and message go into the row
    (``status="failed"``). Streams of modalities that succeeded are kept, so a rerun recomputes only what failed.
    """
    started = time.perf_counter()
    row: dict[str, Any] = {**(previous or {}), "video_id": source.video_id, "path": source.path}
    computed: list[str] = []
    loads: list[str] = []
    errors: list[tuple[str, str]] = []
    stage = "read"
    try:
        if not os.path.isfile(source.path):
            raise MediaNotFoundError(source.path, "read", "no such file")
        row["size"] = os.path.getsize(source.path)
        sha256 = row["sha256"] = sha256_file(source.path)
        same_source = bool(previous) and previous.get("sha256") == sha256
        stage = "store"
        todo = _stale_specs(store, source.video_id, sha256, specs, same_source, force)
        if not todo and same_source and previous.get("status") == "done":
            return {**row, **stream_columns(store, source.video_id), "_outcome": "skipped", "_computed": [],
                    "_loads": []}

        from extractors.media import decode

        stage = "decode"
        media = decode(source.path, **(decode_options or {}))  # audio-only: no frames, an empty visual stream
        row["duration"] = float(media.duration)
        row["fps"] = float(media.native_fps) if media.native_fps else None
        for spec in todo:
            stage = spec.modality
            try:
                extractor, created = worker_extractor(spec)
                if created:
                    loads.append(spec.name)
                table = extractor.extract(media)
                store.write_stream(spec.modality, source.video_id, table, extractor.metadata(),
                                   source_sha256=sha256)
            except Exception as exc:  # record it, go on with the other modalities of this video
                errors.append((spec.modality, exc.message if isinstance(exc, StageError) else
                               f"{type(exc).__name__}: {exc}"))
                store.delete_stream(spec.modality, source.video_id)  # no stale stream left behind
                continue
            computed.append(spec.modality)
    except StageError as exc:
        errors.append((exc.stage, exc.message))
    except Exception as exc:  # a library failing deep inside: name the stage
        errors.append((stage, f"{type(exc).__name__}: {exc}"))
    try:
        row.update(stream_columns(store, source.video_id))
    except Exception as exc:  # the store itself cannot be read
        errors.append(("store", f"{type(exc).__name__}: {exc}"))
    row["versions"] = json.dumps(library_versions(), sort_keys=True)
    row["status"] = "failed" if errors else "done"
    row["error_stage"] = errors[0][0] if errors else None
    row["error_message"] = "; ".join(msg for _, msg in errors) if errors else None
    row["seconds"] = time.perf_counter() - started
    row["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {**row, "_outcome": "failed" if errors else "done", "_computed": computed, "_loads": loads}


# ----------------------------------------------------------------------------------------- client side
def build_extractors(names: dict[str, str | None] | None = None,
                     options: dict[str, dict[str, Any]] | None = None) -> list[Extractor]:
    """Extractors by modality (``None`` skips a modality), with per-modality config overrides."""
    from extractors.base import create

    names = {**DEFAULT_EXTRACTORS, **(names or {})}
    options = options or {}
    unknown = sorted(set(options) - set(MODALITIES))
    if unknown:
        raise ValueError(f"[extract] options for unknown modalities {unknown}; the modalities are {MODALITIES}")
    built = []
    for modality in MODALITIES:
        if names.get(modality):
            extractor = create(names[modality], **options.get(modality, {}))
            if extractor.modality != modality:
                raise ValueError(f"[extract] {names[modality]} extracts {extractor.modality}, not {modality}")
            built.append(extractor)
        elif options.get(modality):
            raise ValueError(f"[extract] options given for {modality}, which is not extracted")
    if not built:
        raise ValueError("[extract] no extractor selected: extract at least one modality")
    return built


def default_decode_options(extractors: Iterable[Extractor]) -> dict[str, Any]:
    """Decode at the visual extractor's frame rate when its config has one (it is then part of its hash)."""
    for e in extractors:
        if e.modality == "visual" and getattr(e.config, "fps", None):
            return {"fps": e.config.fps}
    return {}


def _segment_rows(sources: list[VideoSource]):
    import pandas as pd

    rows = []
    for source in sources:
        for seg in segments_of(source):
            rows.append({"video_id": seg.video_id, "segment_id": seg.segment_id, "start": float(seg.start),
                         "end": None if seg.end is None else float(seg.end), "split": seg.split, **seg.labels})
    return pd.DataFrame.from_records(rows)


def extract_corpus(sources: list[VideoSource], store: FeatureStore | str, *, client: "Client | None" = None,
                   extractors: list[Extractor] | None = None, force: bool = False, progress: bool = True,
                   retries: int = 2,
                   decode_options: dict[str, Any] | None = None) -> ExtractSummary:
    """Extract ``sources`` into ``store``; videos already complete for the same source hash and configs are skipped.

    Args:
        sources: the corpus (see :mod:`pipeline.corpus`).
        store: the feature store or its path/URL; every worker must reach it (a shared path or an object store).
        client: a Dask client; None: the one this process has open (``distributed.get_client()``).
        extractors: one per modality to extract (default: :func:`build_extractors`'s).
        force: recompute every stream even when it is up to date.
        progress: show a progress bar (tqdm) while videos complete.
        retries: how many times a task whose worker died is retried elsewhere.
        decode_options: keyword arguments of ``extractors.media.decode`` (default: the visual extractor's fps).
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    started = time.perf_counter()
    _check_ids(sources)  # before any work: a bad id would otherwise fail only when its first stream is written
    client = current_client(client)
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    extractors = extractors if extractors is not None else build_extractors()
    specs = tuple(ExtractorSpec.of(e) for e in extractors)
    if len({s.modality for s in specs}) != len(specs):
        raise ValueError("[extract] give one extractor per modality")
    ids = [s.video_id for s in sources]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"[extract] video ids must be unique in a corpus; given twice: {twice}")
    decode_options = default_decode_options(extractors) if decode_options is None else decode_options

    store.cleanup_temporary()  # left by a killed run; one run per store at a time
    if sources:
        store.write_segments(_segment_rows(sources))
    videos = store.videos()
    rows: dict[str, dict[str, Any]] = {r["video_id"]: {k: plain_value(v) for k, v in r.items()}
                                       for r in videos.to_dict("records")}
    summary = ExtractSummary(computed={s.modality: 0 for s in specs},
                             skipped_files=list(sources.skipped) if isinstance(sources, Corpus) else [])
    summary.workers = len(client.scheduler_info(n_workers=-1)["workers"])
    # largest files first, so that no long video starts last and leaves the other workers idle at the end
    futures = [client.submit(extract_video, src, store, specs, rows.get(src.video_id), force=force,
                             decode_options=decode_options, pure=False, retries=retries,
                             priority=_file_size(src.path), key=f"extract-{src.video_id}-{os.urandom(4).hex()}")
               for src in sources]
    source_of = {f.key: src for f, src in zip(futures, sources)}
    bar = tqdm(total=len(futures), unit="video", disable=not progress, dynamic_ncols=True)
    for future in as_completed(futures):
        src = source_of[future.key]
        try:
            result = future.result()
        except Exception as exc:  # the task itself died (KilledWorker after repeated worker deaths)
            result = {**rows.get(src.video_id, {}), **_stream_columns_or_none(store, src.video_id),
                      "video_id": src.video_id, "path": src.path, "status": "failed", "error_stage": "worker",
                      "error_message": f"{type(exc).__name__}: {exc}", "_outcome": "failed", "_computed": [],
                      "_loads": []}
        outcome, computed, loads = result.pop("_outcome"), result.pop("_computed"), result.pop("_loads")
        rows[src.video_id] = result
        store.write_videos(_frame(rows))
        summary.model_loads += len(loads)
        for m in computed:
            summary.computed[m] += 1
        if outcome == "skipped":
            summary.skipped += 1
        elif outcome == "done":
            summary.done += 1
            summary.media_seconds += result.get("duration") or 0.0
        else:
            summary.failed += 1
            summary.failures.append({"video_id": src.video_id, "path": src.path,
                                     "stage": result.get("error_stage"), "message": result.get("error_message")})
            summary.media_seconds += (result.get("duration") or 0.0) if computed else 0.0
        bar.set_postfix(done=summary.done, skipped=summary.skipped, failed=summary.failed, refresh=False)
        bar.update(1)
    bar.close()
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _check_ids(sources: list[VideoSource]) -> None:
    """Ids are checked before any work, so that no video is decoded and transcribed only to fail at its write."""
    for source in sources:
        try:
            check_video_id(source.video_id)
            for segment in source.segments:
                check_segment_id(segment.segment_id)
        except ValueError as exc:
            raise ValueError(f"{source.path}: [extract] {exc}") from None


def _stream_columns_or_none(store: FeatureStore, video_id: str) -> dict[str, Any]:
    try:
        return stream_columns(store, video_id)
    except Exception:  # the store is unreachable from here too: the rerun reads the files again
        return {}


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _frame(rows: dict[str, dict[str, Any]]):
    import pandas as pd

    return pd.DataFrame.from_records(list(rows.values()))
