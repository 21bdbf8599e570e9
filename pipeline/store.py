"""The Parquet feature store: one narrow reader/writer over a local path or an fsspec URL.

Layout (see docs/store.md)::

    ROOT/
      videos.parquet                                   one row per video: source, hash, status, provenance
      segments.parquet                                 one row per segment: ids, start, end, split, labels
      language/video_id=<id>/part.parquet              one file per video and modality (hive partitioning)
      acoustic/video_id=<id>/part.parquet
      visual/video_id=<id>/part.parquet
      voice/video_id=<id>/part.parquet                 speech and loudness, for annotation (not a model input)
      _journal/part-<seq>.parquet                      videos rows appended during a run (compacted at its end)
      _chunks/video_id=<id>/<modality>/chunk-<k>.parquet  chunks of a long video until they are merged
      _lock.json                                       the running writer's host, pid and start (store_lock.py)

Every write goes through :func:`pipeline.files.atomic_write` (a hidden temporary file renamed onto the target), so
a reader (or a process killed at any moment) sees either the old file or the new one, never half a file. Readers skip hidden files: ``pyarrow.dataset``, pandas and dask ignore names starting with ``.`` or ``_``.
The ``video_id`` column of a stream lives in its folder name (hive style), not in the file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.arrays import STORED_MODALITIES
from pipeline.files import atomic_write, remove_temporaries
from pipeline.store_videos import VIDEO_COLUMNS, VIDEO_SCHEMA, VideoTable, plain_value  # noqa: F401 (re-exported)

VIDEO_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # matched whole (re.fullmatch), ASCII only
# A video id names path components: the store's folder ``video_id=<id>`` (id + 9 bytes), subtitle files ``<id>.vtt``
# and the atomic writer's temporaries beside them, ``.<id>.vtt.<12 hex>.tmp`` (id + 22 bytes, the longest). A
# component may hold 255 bytes on ext4, XFS, Btrfs, APFS and NTFS but only 143 on eCryptfs (encrypted home
# folders); 100 ASCII characters leave 122 bytes at most, under both.
MAX_VIDEO_ID_LENGTH = 100
PARTITIONING = ds.partitioning(pa.schema([("video_id", pa.string())]), flavor="hive")

SEGMENT_SCHEMA = pa.schema([("video_id", pa.string()), ("segment_id", pa.string()), ("start", pa.float64()),
                            ("end", pa.float64()), ("split", pa.string())])
SEGMENT_COLUMNS = SEGMENT_SCHEMA.names
STAGING = "_chunks"  # chunk streams of long videos until their merge; readers skip names starting with "_"


def check_video_id(video_id: str) -> str:
    """A video id names a folder: 1 to :data:`MAX_VIDEO_ID_LENGTH` ASCII letters, digits, '.', '_' and '-', not
    starting with '.', '_' or '-'. The whole string must match (no trailing newline)."""
    if not isinstance(video_id, str):
        raise ValueError(f"invalid video_id {video_id!r}: not a string")
    if len(video_id) > MAX_VIDEO_ID_LENGTH:
        raise ValueError(f"invalid video_id {video_id[:40]!r}... ({len(video_id)} characters): at most "
                         f"{MAX_VIDEO_ID_LENGTH}, since it names folders and files of the store")
    if not VIDEO_ID_PATTERN.fullmatch(video_id):
        raise ValueError(f"invalid video_id {video_id!r}: use ASCII letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    return video_id


class FeatureStore(VideoTable):
    """Per-modality Parquet datasets plus ``videos.parquet`` and ``segments.parquet`` under ``root``.

    ``root`` is a local path or an fsspec URL (``file://``, ``memory://``, ``s3://`` with s3fs installed, ...);
    ``storage_options`` go to the fsspec filesystem. The object is cheap to pickle (it sends its URL, not a
    connection), so Dask tasks can take it as an argument.
    """

    def __init__(self, root: str | os.PathLike, *, storage_options: dict[str, Any] | None = None):
        self.url = os.fspath(root)
        self.storage_options = dict(storage_options or {})
        self._fs = None
        self._root: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], storage_options=state["storage_options"])

    def __repr__(self) -> str:
        return f"FeatureStore({self.url!r})"

    @property
    def fs(self):
        if self._fs is None:
            from fsspec.core import url_to_fs

            self._fs, root = url_to_fs(self.url, **self.storage_options)
            self._root = root.rstrip("/") or "/"
        return self._fs

    @property
    def root(self) -> str:
        """The store's path inside :attr:`fs`."""
        self.fs  # noqa: B018  (resolves the URL)
        return self._root

    @property
    def is_local(self) -> bool:
        from fsspec.implementations.local import LocalFileSystem

        return isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    # ----------------------------------------------------------------------------------------- atomic writes
    def _write_atomic(self, table: pa.Table, path: str) -> None:
        atomic_write(path, lambda tmp: pq.write_table(table, tmp), fs=None if self.is_local else self.fs)

    def _read_file(self, path: str) -> pa.Table:
        with self.fs.open(path, "rb") as f:
            return pq.read_table(f)

    def writing(self, *, log: Callable[[str], None] | None = None) -> ContextManager:
        """Hold the store's write lock for a ``with`` block (one writing run at a time; see
        :mod:`pipeline.store_lock`): a :class:`~pipeline.errors.StoreLockedError` names the run that holds it."""
        from pipeline.store_lock import store_lock

        self.fs.makedirs(self.root, exist_ok=True)
        return store_lock(self.fs, self.root, url=self.url, log=log)

    def cleanup_temporary(self) -> int:
        """Remove temporary files left by killed writers; call it only while no one writes. Returns the count."""
        return remove_temporaries(self.root, fs=self.fs)

    # ------------------------------------------------------------------------------------------------ streams
    def stream_path(self, modality: str, video_id: str) -> str:
        if modality not in STORED_MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; one of {STORED_MODALITIES}")
        return self.path(modality, f"video_id={check_video_id(video_id)}", "part.parquet")

    def write_stream(self, modality: str, video_id: str, table: pa.Table, metadata: dict[str, str] | None = None,
                     *, source_sha256: str | None = None) -> str:
        """Write (or replace) one video's stream atomically.

        ``metadata`` is merged into the schema metadata, with ``rows`` (the table's row count) and, when given,
        ``source_sha256`` (the hash of the source it was extracted from): with the extractor's ``config_hash``,
        they are what :func:`stream_is_current` checks.
        """
        if "video_id" in table.column_names:
            raise ValueError(f"{modality}: video_id lives in the partition folder, not in the file")
        path = self.stream_path(modality, video_id)
        self._write_atomic(_with_metadata(table, metadata, source_sha256), path)
        return path

    def stream_info(self, modality: str, video_id: str) -> "StreamInfo | None":
        """What one stream file says of itself, from its Parquet footer only; None when there is no such file
        (or it cannot be read as Parquet)."""
        return self._info(self.stream_path(modality, video_id))

    def _info(self, path: str) -> "StreamInfo | None":
        try:
            with self.fs.open(path, "rb") as f:
                parquet = pq.ParquetFile(f)
                rows, meta = parquet.metadata.num_rows, parquet.schema_arrow.metadata or {}
        except (OSError, pa.ArrowException):  # no file, or not Parquet: it vouches for nothing
            return None
        return StreamInfo(rows, {k.decode(): v.decode() for k, v in meta.items() if not k.startswith(b"ARROW:")})

    def has_stream(self, modality: str, video_id: str) -> bool:
        return self.fs.exists(self.stream_path(modality, video_id))

    def delete_stream(self, modality: str, video_id: str) -> None:
        path = self.stream_path(modality, video_id)
        if self.fs.exists(path):
            self.fs.rm(path)

    # ------------------------------------------------------------------------------------- chunk staging
    def chunk_path(self, modality: str, video_id: str, index: int) -> str:
        if modality not in STORED_MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; one of {STORED_MODALITIES}")
        return self.path(STAGING, f"video_id={check_video_id(video_id)}", modality, f"chunk-{index:05d}.parquet")

    def write_chunk(self, modality: str, video_id: str, index: int, table: pa.Table, metadata: dict[str, str],
                    *, source_sha256: str) -> str:
        """Write one chunk of a stream as a staging file (same metadata keys as :meth:`write_stream`)."""
        path = self.chunk_path(modality, video_id, index)
        self._write_atomic(_with_metadata(table, metadata, source_sha256), path)
        return path

    def chunk_info(self, modality: str, video_id: str, index: int) -> "StreamInfo | None":
        return self._info(self.chunk_path(modality, video_id, index))

    def merge_chunks(self, modality: str, video_id: str, indices: list[int], metadata: dict[str, str], *,
                     source_sha256: str, each_chunk: Callable[[pa.Table], pa.Table] | None = None) -> str:
        """Write the stream of ``video_id`` from its staged chunks, in order, one chunk in memory at a time.

        ``each_chunk``: applied to each chunk's table in order before it is written; it may carry state from one
        chunk to the next (ids that continue across chunks: utterances, face tracks). An empty chunk adds nothing
        and is not passed to it, unless every chunk is empty (the last one then gives the file its typed schema).
        """
        infos = [self.chunk_info(modality, video_id, i) for i in indices]
        if any(info is None for info in infos):
            raise FileNotFoundError(f"{self.url}: a staged {modality} chunk of {video_id} is missing")
        rows = sum(info.rows for info in infos)
        path = self.stream_path(modality, video_id)

        def write(tmp: str) -> None:
            writer = None
            try:
                for k, i in enumerate(indices):
                    table = self._read_file(self.chunk_path(modality, video_id, i))
                    if table.num_rows == 0 and (writer is not None or k < len(indices) - 1):
                        continue  # an empty chunk (silence, no face) adds nothing; the file takes a typed schema
                    table = table.replace_schema_metadata(None)
                    if each_chunk is not None:
                        table = each_chunk(table)
                    table = _with_metadata(table, metadata, source_sha256, rows=rows)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table.cast(writer.schema))
            finally:
                if writer is not None:
                    writer.close()

        atomic_write(path, write, fs=None if self.is_local else self.fs)
        return path

    def delete_chunks(self, video_id: str) -> None:
        folder = self.path(STAGING, f"video_id={check_video_id(video_id)}")
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)
        try:
            self.fs.rmdir(self.path(STAGING))  # the last long video's staging gone: no empty folder left
        except OSError:  # other videos' chunks are staged (or an object store, without folders)
            pass

    def stream_video_ids(self, modality: str) -> list[str]:
        """Ids of the videos that have a ``modality`` file, sorted."""
        folder = self.path(modality)
        if not self.fs.exists(folder):
            return []
        ids = []
        for entry in self.fs.ls(folder, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("video_id=") and self.fs.exists(f"{entry.rstrip('/')}/part.parquet"):
                ids.append(name[len("video_id="):])
        return sorted(ids)

    def stream_metadata(self, modality: str, video_id: str | None = None) -> dict[str, str]:
        """Schema metadata of one video's ``modality`` file (the first video's when ``video_id`` is None)."""
        if video_id is None:
            ids = self.stream_video_ids(modality)
            if not ids:
                return {}
            video_id = ids[0]
        with self.fs.open(self.stream_path(modality, video_id), "rb") as f:
            meta = pq.read_schema(f).metadata or {}
        return {k.decode(): v.decode() for k, v in meta.items()}

    def read_stream(self, modality: str, video_ids: Iterable[str] | None = None,
                    columns: list[str] | None = None) -> pa.Table:
        """One modality's rows, ``video_id`` (string) first, videos in sorted order, rows in stored order.

        ``video_ids=None`` reads every video; an id without a file contributes no rows.
        """
        ids = self.stream_video_ids(modality) if video_ids is None else sorted(set(video_ids))
        tables = []
        for vid in ids:
            path = self.stream_path(modality, vid)
            if not self.fs.exists(path):
                continue
            t = self._read_file(path)
            if columns is not None:
                t = t.select(columns)
            tables.append(t.add_column(0, "video_id", pa.array([vid] * t.num_rows, pa.string())))
        if not tables:
            return pa.table({"video_id": pa.array([], pa.string())})
        return pa.concat_tables(tables, promote_options="default")

    def dataset(self, modality: str) -> ds.Dataset:
        """The ``modality`` folder as a ``pyarrow.dataset`` with ``video_id`` as a string partition column."""
        return ds.dataset(self.path(modality), filesystem=self.fs, format="parquet", partitioning=PARTITIONING)

    # ------------------------------------------------------------------------------------ videos and segments
    def _read_frame(self, name: str, columns: list[str]) -> pd.DataFrame:
        path = self.path(name)
        if not self.fs.exists(path):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        return self._read_file(path).to_pandas()

    def segments(self) -> pd.DataFrame:
        """``segments.parquet`` as a DataFrame: the fixed columns, then one column per label."""
        return self._read_frame("segments.parquet", SEGMENT_COLUMNS)

    def write_segments(self, frame: pd.DataFrame, *, replace_videos: Iterable[str] | None = None) -> None:
        """Rewrite ``segments.parquet``: rows of ``replace_videos`` (default: ``frame``'s videos) are replaced."""
        duplicated = frame[frame.duplicated(["video_id", "segment_id"])]
        if len(duplicated):
            first = duplicated.iloc[0]
            raise ValueError(f"segment {first['video_id']}/{first['segment_id']} is given twice; segment ids must "
                             "be unique within a video")
        replace = set(frame["video_id"]) if replace_videos is None else set(replace_videos)
        current = self.segments()
        keep = current[~current["video_id"].isin(replace)]
        merged = frame if keep.empty else pd.concat([keep, frame], ignore_index=True)
        merged = merged[SEGMENT_COLUMNS + [c for c in merged.columns if c not in SEGMENT_COLUMNS]]
        merged = merged.sort_values(["video_id", "start", "segment_id"]).reset_index(drop=True)
        table = pa.Table.from_pandas(merged, preserve_index=False)
        for i, f in enumerate(SEGMENT_SCHEMA):  # fixed types even when a column is all null
            table = table.set_column(i, f, table.column(f.name).cast(f.type))
        self._write_atomic(table, self.path("segments.parquet"))


def _with_metadata(table: pa.Table, metadata: dict[str, str] | None, source_sha256: str | None, *,
                   rows: int | None = None) -> pa.Table:
    extra = {**(metadata or {}), "rows": table.num_rows if rows is None else rows}
    if source_sha256 is not None:
        extra["source_sha256"] = source_sha256
    merged = {**(table.schema.metadata or {}), **{k.encode(): str(v).encode() for k, v in extra.items()}}
    return table.replace_schema_metadata(merged)


@dataclass(frozen=True)
class StreamInfo:
    """A stream file's footer: its row count and its schema metadata (see docs/store.md)."""

    rows: int
    metadata: dict[str, str]

    @property
    def extractor(self) -> str | None:
        return self.metadata.get("extractor")

    @property
    def config_hash(self) -> str | None:
        return self.metadata.get("config_hash")

    @property
    def source_sha256(self) -> str | None:
        return self.metadata.get("source_sha256")

    def is_current(self, *, config_hash: str, source_sha256: str) -> bool:
        """Written by this config from this source, and whole: the recorded row count is the file's own.

        A file without ``source_sha256`` or ``rows`` (written before they were recorded) is never current.
        """
        return (self.config_hash == config_hash and self.source_sha256 == source_sha256
                and self.metadata.get("rows") == str(self.rows))


def stream_is_current(store: FeatureStore, modality: str, video_id: str, *, config_hash: str,
                      source_sha256: str) -> bool:
    """Whether ``video_id``'s ``modality`` file says it holds the output of ``config_hash`` on ``source_sha256``.

    The file decides, not ``videos.parquet``: a run killed between writing a stream and writing its row leaves the
    row behind the file, never the other way round.
    """
    info = store.stream_info(modality, video_id)
    return info is not None and info.is_current(config_hash=config_hash, source_sha256=source_sha256)


def feature_matrix(table: pa.Table, column: str = "features"):
    """A fixed-size-list column -> (N, d) float32 numpy array (zero-copy when there are no nulls)."""
    import numpy as np

    col = table.column(column).combine_chunks()
    dim = col.type.list_size
    if len(col) == 0:
        return np.zeros((0, dim), np.float32)
    values = pc.list_flatten(col).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(col), dim)
