"""Extract a corpus into a :class:`FeatureStore` with Dask: one task per video, resumable and fault-tolerant.

Each task hashes its source, decodes it once, runs the extractors whose output is missing or stale and writes
each stream atomically, then returns the video's ``videos.parquet`` row. The client writes that row as soon as it
arrives, so a run killed at any moment loses at most its in-flight videos; their partial streams are either
whole files (rewritten on the rerun) or hidden temporaries (removed on the rerun).

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
from pipeline.corpus import segments_of
from pipeline.errors import MediaNotFoundError, StageError
from pipeline.files import sha256_file
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore, plain_value
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
    """What one ``extract_corpus`` run did. ``media_seconds`` counts the videos extracted in this run."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
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


def _stale(previous: dict[str, Any] | None, sha256: str, spec: ExtractorSpec, store: FeatureStore,
           video_id: str) -> bool:
    if not previous or previous.get("sha256") != sha256:
        return True
    if previous.get(f"{spec.modality}_config_hash") != spec.config_hash:
        return True
    return not store.has_stream(spec.modality, video_id)


def extract_video(source: VideoSource, store: FeatureStore, specs: tuple[ExtractorSpec, ...],
                  previous: dict[str, Any] | None, *, force: bool = False,
                  decode_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One video, on a worker: the new ``videos.parquet`` row, plus ``_outcome``, ``_computed``, ``_loads``.

    Never raises for a bad input: the failing stage and message go into the row (``status="failed"``). Streams of
    modalities that succeeded are kept, so a rerun recomputes only what failed.
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
        row["sha256"] = sha256_file(source.path)
        if not previous or previous.get("sha256") != row["sha256"]:  # a new or changed source: forget old streams
            for m in MODALITIES:
                row[f"{m}_config_hash"] = row[f"{m}_extractor"] = row[f"{m}_rows"] = None
                store.delete_stream(m, source.video_id)
        todo = [s for s in specs if force or _stale(previous, row["sha256"], s, store, source.video_id)]
        if not todo and previous and previous.get("status") == "done":
            return {**row, "_outcome": "skipped", "_computed": [], "_loads": []}

        from extractors.media import decode

        stage = "decode"
        media = decode(source.path, **(decode_options or {}))
        row["duration"] = float(media.duration)
        row["fps"] = float(media.native_fps) if media.native_fps else None
        models = json.loads(row["models"]) if isinstance(row.get("models"), str) else {}
        for spec in todo:
            stage = spec.modality
            try:
                extractor, created = worker_extractor(spec)
                if created:
                    loads.append(spec.name)
                table = extractor.extract(media)
                store.write_stream(spec.modality, source.video_id, table, extractor.metadata())
            except Exception as exc:  # record it, go on with the other modalities of this video
                errors.append((spec.modality, exc.message if isinstance(exc, StageError) else
                               f"{type(exc).__name__}: {exc}"))
                store.delete_stream(spec.modality, source.video_id)  # no stream that the row does not vouch for
                row[f"{spec.modality}_config_hash"] = row[f"{spec.modality}_rows"] = None
                continue
            row[f"{spec.modality}_extractor"] = spec.name
            row[f"{spec.modality}_config_hash"] = spec.config_hash
            row[f"{spec.modality}_rows"] = table.num_rows
            models[spec.modality] = {"extractor": spec.name, **extractor.model_identity()}
            computed.append(spec.modality)
        row["models"] = json.dumps(models, sort_keys=True)
    except StageError as exc:
        errors.append((exc.stage, exc.message))
    except Exception as exc:  # a library failing deep inside: name the stage
        errors.append((stage, f"{type(exc).__name__}: {exc}"))
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
    summary = ExtractSummary(computed={s.modality: 0 for s in specs})
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
            result = {**rows.get(src.video_id, {}), "video_id": src.video_id, "path": src.path,
                      "status": "failed", "error_stage": "worker", "error_message": f"{type(exc).__name__}: {exc}",
                      "_outcome": "failed", "_computed": [], "_loads": []}
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


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _frame(rows: dict[str, dict[str, Any]]):
    import pandas as pd

    return pd.DataFrame.from_records(list(rows.values()))
