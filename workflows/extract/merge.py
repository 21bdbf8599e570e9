"""The merge task: a long video's staged chunks become the store's one ``part.parquet`` per stream.

A chunk's rows are in video seconds already (each chunk is extracted at its own place in the video), so merging is
concatenating, chunk after chunk, except for the ids a chunk numbers from zero, which must continue:

* language: ``utterance`` (whisper's segment index) goes on from the previous chunk's last (:class:`Utterances`);
* visual: faces are tracked with one :class:`~extractors.face_tracks.FaceTracker` over the whole video, as they are
  batch after batch inside a window, so a face keeps its ``face_id`` across a cut;
* acoustic, voice: frames as they are.

One mechanism: :func:`chunk_continuation` gives a stream the function its chunks' tables go through, in order (its
state carries from one chunk to the next); :meth:`pipeline.store.FeatureStore.merge_chunks` only stores (reads the
chunk files one at a time, writes the stream atomically).
"""
from __future__ import annotations

import functools
import time
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from extractors.face_tracks import FaceTracker, retrack
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore
from workflows.extract.plan import Plan
from workflows.extract.rows import Row, finish_row

ChunkContinuation = Callable[[pa.Table], pa.Table]


class Utterances:
    """Utterance ids that continue across chunks: each chunk's are shifted past the last id of the chunks before."""

    def __init__(self, column: str = "utterance"):
        self.column = column
        self.next_id = 0

    def __call__(self, table: pa.Table) -> pa.Table:
        if not table.num_rows:
            return table
        ids = table.column(self.column)
        table = table.set_column(table.schema.get_field_index(self.column), self.column,
                                 pc.add(ids, pa.scalar(self.next_id, ids.type)))
        self.next_id = pc.max(table.column(self.column)).as_py() + 1
        return table


def chunk_continuation(modality: str) -> ChunkContinuation | None:
    """A new function (with its own state) for the chunks of one stream, in order; None: they join as they are."""
    if modality == "language":
        return Utterances()
    if modality == "visual":  # tables with boxes only (several faces per frame); others come back as they are
        return functools.partial(retrack, tracker=FaceTracker())
    return None


def merge_video(source: VideoSource, store: FeatureStore, plan: Plan, results: list[Row]) -> Row:
    """Merge the staged chunks into one ``part.parquet`` per stream (:func:`chunk_continuation`) and return the
    video's row; the staging files go once every stream is merged. ``results``: the chunk tasks' outcomes."""
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
            store.merge_chunks(spec.modality, source.video_id, indices, metadata, source_sha256=plan.sha256,
                               each_chunk=chunk_continuation(spec.modality))
            computed.append(spec.modality)
        except Exception as exc:
            errors.append(("store", f"{spec.modality}: {type(exc).__name__}: {exc}"))
            store.delete_stream(spec.modality, source.video_id)
    if not errors:
        store.delete_chunks(source.video_id)
    seconds = plan.seconds + sum(r.get("seconds", 0.0) for r in results) + time.perf_counter() - started
    loads = [name for r in results for name in r.get("loads", [])]
    warned = [w for r in results for w in r.get("warnings", [])]
    return finish_row(store, row, errors, computed, loads, seconds, warned)
