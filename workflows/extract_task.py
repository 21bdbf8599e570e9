"""The worker side of ``extract_corpus``: the tasks of one video, none of which ever raises for a bad input.

* :func:`triage` (a batch of videos at a time): a video whose size and modification time match its ``done`` row
  and whose stream files are all current is skipped without hashing or decoding anything.
* :func:`prepare_video`: hashes the source (or reuses the row's hash when size and mtime match), finds the stale
  streams, and either extracts a short video in the same task or plans the chunks of a long one (cuts in
  silences, :mod:`workflows.chunks`).
* :func:`extract_chunk`: one chunk of a long video into hidden staging files; a chunk whose staged files are
  current (same config, source and bounds) is not recomputed, so a killed run redoes only unfinished chunks.
* :func:`finish_video`: merges the chunks into one ``part.parquet`` per stream and returns the video's row.

A stream is up to date when its file says so (:meth:`pipeline.store.StreamInfo.is_current`: config hash, source
hash, row count), whatever the previous row claims; the row's stream columns are read back from the files.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from extractors.face_tracks import FaceTracker, retrack
from pipeline.arrays import STORED_MODALITIES
from pipeline.errors import MediaNotFoundError, StageError
from pipeline.files import sha256_file
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore, StreamInfo
from workflows.chunks import Chunk, ChunkConfig, plan_chunks
from workflows.extract_window import ExtractorSpec, extract_window, library_versions

Row = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """A long video's chunks and the streams to compute, as the prepare task found them."""

    chunks: tuple[Chunk, ...]
    todo: tuple[ExtractorSpec, ...]
    sha256: str
    native_fps: float | None
    margin: float
    row: Row  # the video's row so far (path, size, mtime, hash)
    seconds: float  # spent preparing


def stream_columns(store: FeatureStore, video_id: str, infos: dict[str, StreamInfo | None] | None = None) -> Row:
    """The video's ``<m>_extractor``, ``<m>_config_hash``, ``<m>_rows`` and ``models`` as its stream files say
    (their footers), so that ``videos.parquet`` never vouches for a file that holds something else."""
    columns: Row = {}
    models = {}
    for m in STORED_MODALITIES:
        info = store.stream_info(m, video_id) if infos is None else infos[m]
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


def _unchanged(source: VideoSource, previous: Row | None) -> tuple[os.stat_result | None, bool]:
    """The file's stat, and whether size and modification time are those of ``previous`` (its hash still holds)."""
    try:
        st = os.stat(source.path)
    except OSError:
        return None, False
    same = bool(previous) and bool(previous.get("sha256")) and previous.get("size") == st.st_size \
        and previous.get("mtime_ns") == st.st_mtime_ns
    return st, same


def triage(items: list[tuple[VideoSource, Row]], store: FeatureStore, specs: tuple[ExtractorSpec, ...]
           ) -> list[Row | None]:
    """For each ``(source, previous row)``: the refreshed row when the video can be skipped without hashing (its
    size and mtime match a ``done`` row and every stream file is current for that hash), else None."""
    out: list[Row | None] = []
    for source, previous in items:
        try:
            st, same = _unchanged(source, previous)
            if not same or previous.get("status") != "done":
                out.append(None)
                continue
            sha = previous["sha256"]
            infos = {m: store.stream_info(m, source.video_id) for m in STORED_MODALITIES}
            if any(i is not None and i.source_sha256 and i.source_sha256 != sha for i in infos.values()) or not all(
                    infos[s.modality] is not None and infos[s.modality].is_current(
                        config_hash=s.config_hash, source_sha256=sha) for s in specs):
                out.append(None)
                continue
            out.append({**previous, "video_id": source.video_id, "path": source.path,
                        **stream_columns(store, source.video_id, infos),
                        "_outcome": "skipped", "_computed": [], "_loads": []})
        except Exception:  # anything odd: the full task decides
            out.append(None)
    return out


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


def _finish_row(store: FeatureStore, row: Row, errors: list[tuple[str, str]], computed: list[str],
                loads: list[str], seconds: float, warned: list[str] = ()) -> Row:
    """The video's row, with ``_outcome``, ``_computed``, ``_loads`` and ``_warnings`` (a missing track, once each)
    for the client."""
    try:
        row.update(stream_columns(store, row["video_id"]))
    except Exception as exc:  # the store itself cannot be read
        errors.append(("store", f"{type(exc).__name__}: {exc}"))
    row["versions"] = json.dumps(library_versions(), sort_keys=True)
    row["status"] = "failed" if errors else "done"
    row["error_stage"] = errors[0][0] if errors else None
    row["error_message"] = "; ".join(msg for _, msg in errors) if errors else None
    row["seconds"] = seconds
    row["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {**row, "_outcome": "failed" if errors else "done", "_computed": computed, "_loads": loads,
            "_warnings": list(dict.fromkeys(warned))}


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
        st, same = _unchanged(source, previous)
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
        chunks, native_fps, duration = _plan(source.path, chunking, decode_options)
        if len(chunks) > 1 and not todo:  # streams current, no row (killed before it was written)
            row["duration"], row["fps"] = duration, native_fps
            return _finish_row(store, row, errors, computed, loads, time.perf_counter() - started)
        if len(chunks) > 1:
            return {"_outcome": "plan", "_plan": Plan(tuple(chunks), tuple(todo), sha256, native_fps,
                                                      chunking.margin, row, time.perf_counter() - started)}
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
    return _finish_row(store, row, errors, computed, loads, time.perf_counter() - started, warned)


def _plan(path: str, chunking: ChunkConfig | None, decode_options: dict[str, Any] | None
          ) -> tuple[list[Chunk], float | None, float | None]:
    """One chunk for a short video (from the container's header), else cuts from the audio's levels; with the
    native frame rate and the duration when they were read."""
    from extractors.media import DEFAULT_FPS, audio_envelope, probe

    whole = [Chunk(0, 0.0, None)]
    if chunking is None:
        return whole, None, None
    declared, _, _ = probe(path)
    if declared is not None and declared <= chunking.single_max:
        return whole, None, None
    envelope = audio_envelope(path)
    fps = (decode_options or {}).get("fps", DEFAULT_FPS)
    duration = max(envelope.duration, envelope.declared or 0.0)
    grid = 1.0 / fps if fps else None
    return plan_chunks(envelope.rms, envelope.hop, duration, chunking, grid=grid), envelope.native_fps, duration


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


def finish_video(source: VideoSource, store: FeatureStore, plan: Plan, results: list[Row]) -> Row:
    """Merge the staged chunks into one ``part.parquet`` per stream (utterance ids renumbered to continue across
    chunks) and return the video's row; the staging files go once every stream is merged."""
    started = time.perf_counter()
    row = dict(plan.row)
    errors: list[tuple[str, str]] = []
    computed: list[str] = []
    failed = {}
    for result in sorted(results, key=lambda r: r["index"]):
        for modality, error in result["errors"].items():
            failed.setdefault(modality, tuple(error))
    indices = [c.index for c in plan.chunks]
    ends = [r["end"] for r in results if r["index"] == indices[-1] and r["end"] is not None]
    if ends:
        row["duration"] = ends[0]
    fps = [r["native_fps"] for r in results if r.get("native_fps")] + [plan.native_fps]
    row["fps"] = float(fps[0]) if fps[0] else None
    for spec in plan.todo:
        if spec.modality in failed:
            errors.append(failed[spec.modality])
            store.delete_stream(spec.modality, source.video_id)
            continue
        try:
            first = store.chunk_info(spec.modality, source.video_id, indices[0])
            metadata = {k: v for k, v in first.metadata.items()
                        if k not in ("chunk", "decoded_end", "rows", "source_sha256")}
            renumber = "utterance" if spec.modality == "language" else None
            faces = FaceTracker()  # face ids that carry on from chunk to chunk (visual tables with boxes only)
            transform = (lambda table: retrack(table, faces)) if spec.modality == "visual" else None
            store.merge_chunks(spec.modality, source.video_id, indices, metadata, source_sha256=plan.sha256,
                               renumber=renumber, transform=transform)
            computed.append(spec.modality)
        except Exception as exc:
            errors.append(("store", f"{spec.modality}: {type(exc).__name__}: {exc}"))
            store.delete_stream(spec.modality, source.video_id)
    if not errors:
        store.delete_chunks(source.video_id)
    seconds = plan.seconds + sum(r.get("seconds", 0.0) for r in results) + time.perf_counter() - started
    loads = [name for r in results for name in r.get("loads", [])]
    warned = [w for r in results for w in r.get("warnings", [])]
    return _finish_row(store, row, errors, computed, loads, seconds, warned)


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
    return finish_video(source, store, plan, results)
