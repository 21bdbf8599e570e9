"""The prepare and chunk tasks of one video on a worker (drawn in :mod:`workflows.extract`); none raises for a bad
input.

* :func:`prepare_video`: hashes the source (or reuses the row's hash when size and mtime match), finds the stale
  streams, and either extracts a short video in the same task or plans the chunks of a long one (cuts in
  silences, :mod:`workflows.extract.plan`).
* :func:`extract_chunk`: one chunk of a long video into hidden staging files; a chunk whose staged files are
  current (same config, source and bounds) is not recomputed, so a killed run redoes only unfinished chunks.
* :func:`extract_video`: the two, then the merge (:func:`workflows.extract.merge.merge_video`), in this process.
"""
from __future__ import annotations

import os
import time
from typing import Any

from pipeline.arrays import STORED_MODALITIES
from pipeline.errors import MediaNotFoundError, StageError
from pipeline.files import sha256_file
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore, StreamInfo
from workflows.extract.chunks import Chunk, ChunkConfig
from workflows.extract.merge import merge_video
from workflows.extract.plan import Plan, video_chunks
from workflows.extract.rows import Row, finish_row, stream_columns, unchanged
from workflows.extract.window import extract_window
from workflows.extract.worker import ExtractorSpec


def _stale_specs(store: FeatureStore, video_id: str, sha256: str, specs: tuple[ExtractorSpec, ...],
                 same_source: bool, force: bool) -> list[ExtractorSpec]:
    """The specs whose stream file is not current (:meth:`StreamInfo.is_current`); streams of another source are
    deleted first, whatever their modality, so that no file outlives the source it was extracted from."""
    infos = {m: store.stream_info(m, video_id) for m in STORED_MODALITIES}
    for m, info in infos.items():
        # a file marked with another source, or an unmarked one (older version) when the source changed
        if info is not None and info.source_sha256 != sha256 and (info.source_sha256 or not same_source):
            store.delete_stream(m, video_id)
            infos[m] = None
    return [s for s in specs if force or infos[s.modality] is None
            or not infos[s.modality].is_current(config_hash=s.config_hash, source_sha256=sha256)]


def prepare_video(source: VideoSource, store: FeatureStore, specs: tuple[ExtractorSpec, ...],
                  previous: Row | None, *, force: bool = False, decode_options: dict[str, Any] | None = None,
                  chunking: ChunkConfig | None = None) -> Row:
    """One video's first task: the final row (skipped, failed, or a short video extracted here), or
    ``{"_outcome": "plan", "_plan": Plan}`` for a long video whose chunks run as tasks of their own."""
    started = time.perf_counter()
    row: Row = {**(previous or {}), "video_id": source.video_id, "path": source.path}
    errors: list[tuple[str, str]] = []
    computed: list[str] = []
    loads: list[str] = []
    warned: list[str] = []
    stage = "read"
    try:
        st, same = unchanged(source, previous)
        if st is None or not os.path.isfile(source.path):
            raise MediaNotFoundError(source.path, "read", "no such file")
        row["size"], row["mtime_ns"] = st.st_size, st.st_mtime_ns
        sha256 = row["sha256"] = previous["sha256"] if same else sha256_file(source.path)
        same_source = bool(previous) and previous.get("sha256") == sha256
        stage = "store"
        todo = _stale_specs(store, source.video_id, sha256, specs, same_source, force)
        if not todo and same_source and previous.get("status") == "done":
            return {**row, **stream_columns(store, source.video_id), "_outcome": "skipped", "_computed": [],
                    "_loads": []}
        stage = "decode"
        chunks, native_fps, duration = video_chunks(source.path, chunking, decode_options)
        if len(chunks) > 1 and not todo:  # streams current, no row (killed before it was written)
            row["duration"], row["fps"] = duration, native_fps
            return finish_row(store, row, errors, computed, loads, time.perf_counter() - started)
        if len(chunks) > 1:
            return {"_outcome": "plan", "_plan": Plan(tuple(chunks), tuple(todo), sha256, native_fps,
                                                      chunking.margin, row, time.perf_counter() - started,
                                                      duration)}
        result = extract_window(source.path, todo, decode_options=decode_options)  # audio-only: no frames
        warned = result.warnings
        row["duration"] = float(result.end)
        row["fps"] = float(result.native_fps) if result.native_fps else None
        loads += result.loads
        for spec in todo:
            stage = spec.modality
            if spec.modality in result.errors:
                errors.append((spec.modality, result.errors[spec.modality]))
                store.delete_stream(spec.modality, source.video_id)  # no stale stream left behind
                continue
            store.write_stream(spec.modality, source.video_id, result.tables[spec.modality],
                               result.metadata[spec.modality], source_sha256=sha256)
            computed.append(spec.modality)
    except StageError as exc:
        errors.append((exc.stage, exc.message))
    except Exception as exc:  # a library failing deep inside: name the stage
        errors.append((stage, f"{type(exc).__name__}: {exc}"))
    return finish_row(store, row, errors, computed, loads, time.perf_counter() - started, warned)


def _chunk_current(store: FeatureStore, spec: ExtractorSpec, video_id: str, chunk: Chunk, sha256: str
                   ) -> StreamInfo | None:
    info = store.chunk_info(spec.modality, video_id, chunk.index)
    if info is None or not info.is_current(config_hash=spec.config_hash, source_sha256=sha256) \
            or info.metadata.get("chunk") != chunk.label():
        return None
    return info


def extract_chunk(source: VideoSource, store: FeatureStore, plan: Plan, index: int,
                  decode_options: dict[str, Any] | None = None) -> Row:
    """One chunk of a long video into staging files: ``{"index", "computed", "errors", "end", "loads",
    "seconds"}``; the streams whose staged chunk is current are not recomputed."""
    started = time.perf_counter()
    chunk = plan.chunks[index]
    done = {s.modality: _chunk_current(store, s, source.video_id, chunk, plan.sha256) for s in plan.todo}
    need = [s for s in plan.todo if done[s.modality] is None]
    out: Row = {"index": index, "computed": [], "errors": {}, "loads": [], "end": None, "native_fps": None}
    for info in done.values():
        if info is not None:
            out["end"] = float(info.metadata.get("decoded_end", "nan"))
    if need:
        try:
            result = extract_window(source.path, need, start=chunk.start, end=chunk.end,
                                    decode_options=decode_options, margin=plan.margin)
        except StageError as exc:
            out["errors"] = {s.modality: (exc.stage, exc.message) for s in need}
        except Exception as exc:
            out["errors"] = {s.modality: ("decode", f"{type(exc).__name__}: {exc}") for s in need}
        else:
            out["end"], out["native_fps"], out["loads"] = result.end, result.native_fps, result.loads
            out["warnings"] = result.warnings
            for spec in need:
                if spec.modality in result.errors:
                    out["errors"][spec.modality] = (spec.modality, result.errors[spec.modality])
                    continue
                metadata = {**result.metadata[spec.modality], "chunk": chunk.label(), "decoded_end": result.end}
                store.write_chunk(spec.modality, source.video_id, index, result.tables[spec.modality], metadata,
                                  source_sha256=plan.sha256)
                out["computed"].append(spec.modality)
    out["seconds"] = time.perf_counter() - started
    return out


def extract_video(source: VideoSource, store: FeatureStore, specs: tuple[ExtractorSpec, ...],
                  previous: Row | None, *, force: bool = False, decode_options: dict[str, Any] | None = None,
                  chunking: ChunkConfig | None = None) -> Row:
    """One video in this process, its chunks one after another: the new ``videos.parquet`` row, plus
    ``_outcome``, ``_computed`` and ``_loads``. Never raises for a bad input: the failing stage and message go
    into the row (``status="failed"``); streams of modalities that succeeded are kept."""
    first = prepare_video(source, store, specs, previous, force=force, decode_options=decode_options,
                          chunking=chunking)
    if first["_outcome"] != "plan":
        return first
    plan = first["_plan"]
    results = [extract_chunk(source, store, plan, c.index, decode_options) for c in plan.chunks]
    return merge_video(source, store, plan, results)
