"""Extraction: a corpus into a :class:`~pipeline.store.FeatureStore` with Dask, resumable, in bounded memory.

The client (:mod:`workflows.extract.run`, ``extract_corpus``) submits four kinds of task as earlier ones finish;
any worker runs any of them, and none raises for a bad input (the failing stage goes into the video's row)::

  client (run.py)                                 task (module)          what it does, what it writes
  ──────────────────────────────────────────      ──────────────────     ─────────────────────────────────────────
  videos a previous run finished, 250 a task ──▶  triage   triage.py     skips a video whose size, mtime and
                                                                         stream files still match (no hashing);
                                                                         any other goes on to prepare
  every other video, largest file first ───────▶  prepare  tasks.py      hashes it, finds its stale streams, then
                                                    ├─ short video:      one window (window.py) ──▶ part.parquet
                                                    └─ long video:       a Plan: cuts in silences (plan.py,
                                                                         chunks.py), back to the client
  each chunk of a Plan, on every worker ───────▶  chunk    tasks.py      one window ──▶ _chunks/.../chunk-<k>.parquet
  the Plan's last chunk done ──────────────────▶  merge    merge.py      the chunks, in order ──▶ part.parquet
  ◀── a video's row (skipped, done or failed) from its triage, prepare or merge task; a chunk's outcome

  part.parquet: STORE/<modality>/video_id=<id>/part.parquet, one per stream (see docs/store.md)

Who merges what:

* a window (in a prepare or a chunk task, :mod:`workflows.extract.window`): the visual extractor's batches of
  frames into one table, face ids from one tracker; the frames never pile up;
* the merge task (:mod:`workflows.extract.merge`): a long video's chunk files into one file per stream; rows are
  in video seconds already, utterance ids and face ids continue from chunk to chunk (one function per stream,
  :func:`workflows.extract.merge.chunk_continuation`); the store only reads the chunk files and writes the file
  atomically (:meth:`pipeline.store.FeatureStore.merge_chunks`);
* the client (:mod:`workflows.extract.run`): every video's row into the store's journal, folded into
  ``videos.parquet`` when the run ends (or when the next one starts, after a kill).

The other modules: :mod:`workflows.extract.worker` (the extractors a worker keeps, models loaded once per process
and config, and :class:`ExtractorSpec`, what rebuilds one there), :mod:`workflows.extract.rows` (a video's row,
its stream columns read back from the files). :func:`extract_video` runs a video's tasks one after another in this
process.
"""
from workflows.extract.chunks import ChunkConfig
from workflows.extract.rows import stream_columns
from workflows.extract.run import (DEFAULT_CHUNKING, WARNING_LINES, ExtractSummary, build_extractors,
                                   default_decode_options, extract_corpus, one_task)
from workflows.extract.tasks import extract_video
from workflows.extract.worker import ExtractorSpec, worker_extractor

__all__ = ["ChunkConfig", "DEFAULT_CHUNKING", "ExtractSummary", "ExtractorSpec", "WARNING_LINES", "build_extractors",
           "default_decode_options", "extract_corpus", "extract_video", "one_task", "stream_columns",
           "worker_extractor"]
