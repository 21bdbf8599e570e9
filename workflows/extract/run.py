"""The client's side of ``extract_corpus``: one run over a corpus, resumable, fault-tolerant, in bounded memory.

It submits the tasks (drawn in :mod:`workflows.extract`) as earlier ones finish: batched triage of the videos a
previous run finished, a prepare task for every other video (largest files first), the chunks of a long video once
its plan is known, and its merge once its last chunk is in.

The client records every finished video's row in the store's journal (small Parquet parts, a few at a time:
O(1) per video) and folds it into ``videos.parquet`` when the run ends, or when the next run starts after a
kill. A run killed at any moment loses at most its in-flight videos and chunks; their partial streams are whole
files or hidden temporaries (removed on the rerun). A stream file carries its config hash, source hash and row
count, and only the file is trusted: a file rewritten just before a kill, whose row still describes the old one,
is judged by what it holds, and the row is read back from the files.

A run holds the store's lock (:mod:`pipeline.store_lock`) from its first write to its last: a second run on the
same store is refused at once, naming the first.

Only the :class:`extractors.base.Extractor` interface is used: any registered extractor of a modality works.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from extractors.base import DEFAULT_EXTRACTORS, Extractor
from pipeline.arrays import STORED_MODALITIES
from pipeline.corpus import Corpus, check_segment_id, segments_of
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore, check_video_id, plain_value
from workflows.cluster import absolute, current_client
from workflows.extract.chunks import ChunkConfig
from workflows.extract.merge import merge_video
from workflows.extract.rows import stream_columns
from workflows.extract.tasks import extract_chunk, prepare_video
from workflows.extract.triage import triage
from workflows.extract.worker import ExtractorSpec, preload

if TYPE_CHECKING:
    from distributed import Client

DEFAULT_CHUNKING = ChunkConfig()
WARNING_LINES = 3  # files printed per kind of warning; the summary counts them all
JOURNAL_FLUSH_ROWS = 500  # rows recorded in one journal part at most ...
JOURNAL_FLUSH_SECONDS = 1.0  # ... and at most this long after the last part (0: one part per video); the first
# row of a run is recorded at once
TRIAGE_BATCH = 250  # videos checked per triage task
_PRIORITY = {"triage": 4 << 40, "merge": 3 << 40, "chunk": 2 << 40}  # above any file size (prepare tasks)


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
    chunks: int = 0                                               # chunk tasks of long videos
    warnings: dict[str, list[str]] = field(default_factory=dict)  # warning (a missing track) -> paths

    def warning_lines(self, at_least: int = 1) -> list[str]:
        """One line per kind of warning that ``at_least`` files had, with their number: ``1,440 files: no video
        track: ...``."""
        return [f"{len(paths):,} file{'' if len(paths) == 1 else 's'}: {message}"
                for message, paths in self.warnings.items() if len(paths) >= at_least]

    @property
    def throughput(self) -> float:
        """Seconds of media extracted per second of wall time (a multiple of real time)."""
        return self.media_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed


# ----------------------------------------------------------------------------------------- client side
def build_extractors(names: dict[str, str | None] | None = None,
                     options: dict[str, dict[str, Any]] | None = None) -> list[Extractor]:
    """Extractors by modality (``None`` skips a modality), with per-modality config overrides."""
    from extractors.base import create

    names = {**DEFAULT_EXTRACTORS, **(names or {})}
    options = options or {}
    unknown = sorted(set(options) - set(STORED_MODALITIES))
    if unknown:
        raise ValueError(f"[extract] options for unknown modalities {unknown}; the modalities are "
                         f"{STORED_MODALITIES}")
    built = []
    for modality in STORED_MODALITIES:
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
                   retries: int = 2, decode_options: dict[str, Any] | None = None,
                   chunking: ChunkConfig | None = DEFAULT_CHUNKING) -> ExtractSummary:
    """Extract ``sources`` into ``store``; videos already complete for the same source hash and configs are skipped.

    Args:
        sources: the corpus (see :mod:`pipeline.corpus`); local paths are made absolute before they are sent.
        store: the feature store or its path/URL; every worker must reach it (a shared path or an object store).
        client: a Dask client; None: the one this process has open (``distributed.get_client()``).
        extractors: one per modality to extract (default: :func:`build_extractors`'s).
        force: recompute every stream even when it is up to date.
        progress: show a progress bar (tqdm) while videos complete.
        retries: how many times a task whose worker died is retried elsewhere.
        decode_options: keyword arguments of ``extractors.media.decode`` (default: the visual extractor's fps).
        chunking: how long videos are cut into chunks that run on every worker (None: one task per video).
    """
    started = time.perf_counter()
    _check_ids(sources)  # before any work: a bad id would otherwise fail only when its first stream is written
    client = current_client(client)
    store = _absolute_store(store)
    extractors = extractors if extractors is not None else build_extractors()
    specs = tuple(ExtractorSpec.of(e, chunking) for e in extractors)
    if len({s.modality for s in specs}) != len(specs):
        raise ValueError("[extract] give one extractor per modality")
    ids = [s.video_id for s in sources]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"[extract] video ids must be unique in a corpus; given twice: {twice}")
    decode_options = default_decode_options(extractors) if decode_options is None else decode_options
    skipped_files = list(sources.skipped) if isinstance(sources, Corpus) else []
    sources = [dataclasses.replace(s, path=absolute(s.path)) for s in sources]  # workers may run elsewhere

    with store.writing():  # one run per store at a time: a second one is refused, naming this one
        store.cleanup_temporary()  # left by a killed run
        store.compact_videos()  # the journal of a killed run
        if sources:
            store.write_segments(_segment_rows(sources))
        rows: dict[str, dict[str, Any]] = {r["video_id"]: {k: plain_value(v) for k, v in r.items()}
                                           for r in store.videos().to_dict("records")}
        if force or any((rows.get(s.video_id) or {}).get("status") != "done" for s in sources):
            # videos to extract: every worker's models load while the first video is hashed and its cuts planned
            if getattr(client.cluster, "processes", True) is False:
                preload(specs)  # workers in this process
            else:
                client.run(_preload_on_worker, specs, wait=False)
        summary = ExtractSummary(computed={s.modality: 0 for s in specs}, skipped_files=skipped_files)
        summary.workers = len(client.scheduler_info(n_workers=-1)["workers"])
        run = _Run(client, store, specs, rows, summary, force=force, retries=retries,
                   decode_options=decode_options, chunking=chunking, progress=progress, total=len(sources))
        try:
            run.go(sources)
        finally:
            run.close()
    summary.wall_seconds = time.perf_counter() - started
    return summary


class _Run:
    """The client's side of one run: submits tasks as earlier ones finish, records rows in the journal."""

    def __init__(self, client, store: FeatureStore, specs, rows, summary: ExtractSummary, *, force, retries,
                 decode_options, chunking, progress, total):
        from distributed import as_completed
        from tqdm.auto import tqdm

        self.client, self.store, self.specs, self.rows, self.summary = client, store, specs, rows, summary
        self.force, self.retries, self.decode_options, self.chunking = force, retries, decode_options, chunking
        self.queue = as_completed()
        self.kind: dict[str, tuple[str, Any]] = {}  # future key -> (task kind, what it is about)
        self.chunk_results: dict[str, list[dict[str, Any]]] = {}
        self.pending: list[dict[str, Any]] = []
        self.flushed = -float("inf")  # the first row is recorded at once
        self.bar = tqdm(total=total, unit="video", disable=not progress, dynamic_ncols=True)

    def _submit(self, kind: str, about: Any, func, *args, priority: int, **kwargs) -> None:
        future = self.client.submit(func, *args, pure=False, retries=self.retries, priority=priority, **kwargs)
        self.kind[future.key] = (kind, about)
        self.queue.add(future)

    def _prepare(self, src: VideoSource) -> None:
        self._submit("prepare", src, prepare_video, src, self.store, self.specs, self.rows.get(src.video_id),
                     force=self.force, decode_options=self.decode_options, chunking=self.chunking,
                     priority=_file_size(src.path))

    def go(self, sources: list[VideoSource]) -> None:
        known = [s for s in sources if not self.force and (self.rows.get(s.video_id) or {}).get("status") == "done"]
        known_ids = {s.video_id for s in known}
        for i in range(0, len(known), TRIAGE_BATCH):
            batch = known[i:i + TRIAGE_BATCH]
            self._submit("triage", batch, triage, [(s, self.rows[s.video_id]) for s in batch], self.store,
                         self.specs, priority=_PRIORITY["triage"])
        for src in sources:  # largest files first: no long video starts last and leaves the others idle
            if src.video_id not in known_ids:
                self._prepare(src)
        for future in self.queue:
            kind, about = self.kind.pop(future.key)
            try:
                result, error = future.result(), None
            except Exception as exc:  # the task itself died (KilledWorker after repeated worker deaths)
                result, error = None, f"{type(exc).__name__}: {exc}"
            future.release()
            getattr(self, f"_on_{kind}")(about, result, error)

    def _on_triage(self, batch: list[VideoSource], results, error) -> None:
        for src, row in zip(batch, results or [None] * len(batch)):
            if row is None:
                self._prepare(src)
            else:
                self._record(src, row)

    def _on_prepare(self, src: VideoSource, result, error) -> None:
        if result is not None and result["_outcome"] == "plan":
            plan = result["_plan"]
            self.chunk_results[src.video_id] = []
            self.summary.chunks += len(plan.chunks)
            for rank, chunk in enumerate(plan.longest_first()):
                self._submit("chunk", (src, plan, chunk.index), extract_chunk, src, self.store, plan, chunk.index,
                             self.decode_options, priority=_PRIORITY["chunk"] - rank)
            return
        self._record(src, result if result is not None else self._died(src, error))

    def _on_chunk(self, about, result, error) -> None:
        src, plan, index = about
        results = self.chunk_results[src.video_id]
        if result is None:  # the chunk's worker died too often: its streams fail, the others' chunks stay staged
            result = {"index": index, "computed": [], "loads": [], "end": None, "native_fps": None, "seconds": 0.0,
                      "errors": {s.modality: ("worker", error) for s in plan.todo}}
        results.append(result)  # its model loads are counted with the merged row
        if len(results) == len(plan.chunks):
            self._submit("merge", src, merge_video, src, self.store, plan, self.chunk_results.pop(src.video_id),
                         priority=_PRIORITY["merge"])

    def _on_merge(self, src: VideoSource, result, error) -> None:
        self._record(src, result if result is not None else self._died(src, error))

    def _died(self, src: VideoSource, error: str) -> dict[str, Any]:
        return {**self.rows.get(src.video_id, {}), **_stream_columns_or_none(self.store, src.video_id),
                "video_id": src.video_id, "path": src.path, "status": "failed", "error_stage": "worker",
                "error_message": error, "_outcome": "failed", "_computed": [], "_loads": [], "_warnings": []}

    def _record(self, src: VideoSource, result: dict[str, Any]) -> None:
        summary = self.summary
        outcome, computed, loads = result.pop("_outcome"), result.pop("_computed"), result.pop("_loads")
        self._warn(src, result.pop("_warnings", []))
        if result != self.rows.get(src.video_id):  # an unchanged skipped row is not written again
            self.pending.append(result)
        self.rows[src.video_id] = result
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
        if len(self.pending) >= JOURNAL_FLUSH_ROWS or time.monotonic() - self.flushed >= JOURNAL_FLUSH_SECONDS:
            self.flush()
        self.bar.set_postfix(done=summary.done, skipped=summary.skipped, failed=summary.failed, refresh=False)
        self.bar.update(1)

    def _warn(self, src: VideoSource, messages: list[str]) -> None:
        """One line for the file (above the progress bar) while its kind of warning is still rare; the summary
        counts every file."""
        shown = []
        for message in messages:
            paths = self.summary.warnings.setdefault(message, [])
            paths.append(src.path)
            if len(paths) <= WARNING_LINES:
                shown.append(message + (" (further files with this warning: counted in the summary)"
                                        if len(paths) == WARNING_LINES else ""))
        if shown:
            self.bar.write(f"warning: {src.path}: {'; '.join(shown)}", file=sys.stderr)

    def flush(self) -> None:
        if self.pending:
            self.store.append_videos(self.pending)
            self.pending = []
        self.flushed = time.monotonic()

    def close(self) -> None:
        self.bar.close()
        self.flush()
        self.store.compact_videos()


async def _preload_on_worker(specs: tuple[ExtractorSpec, ...]) -> None:
    """:func:`preload` on a worker, from ``Client.run`` without waiting (which takes a coroutine function)."""
    preload(specs)


def one_task(sources: list[VideoSource], chunking: ChunkConfig | None) -> bool:
    """Whether extracting ``sources`` is one task: a single file, too short to be cut into chunks (by its
    container's declared duration), so that more than one worker cannot help."""
    from extractors.media import probe

    if len(sources) != 1:
        return False
    if chunking is None:
        return True
    try:
        declared, _, _ = probe(sources[0].path)
    except Exception:  # unreadable here: its one task fails with the reason
        return True
    return declared is not None and declared <= chunking.single_max


def _absolute_store(store: FeatureStore | str) -> FeatureStore:
    """The store with a local path made absolute: workers may run in other directories."""
    if isinstance(store, FeatureStore):
        url = absolute(store.url)
        return store if url == store.url else FeatureStore(url, storage_options=store.storage_options)
    return FeatureStore(absolute(str(store)))

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
