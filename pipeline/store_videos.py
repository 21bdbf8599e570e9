"""``videos.parquet`` and its journal: one row per video, appended in O(1) during a run, compacted at its end.

A run appends the rows of the videos it finishes as small Parquet parts (``STORE/_journal/part-<seq>.parquet``,
a folder readers skip), a few at a time, instead of rewriting ``videos.parquet`` after every video (quadratic in
the corpus size). ``videos.parquet`` is rewritten once, when the run ends (and, after a kill, when the next run
starts): the new file names in its metadata the last part it holds (``journal_upto``), so that parts a kill leaves
behind after the rename are ignored, then removed. :meth:`VideoTable.videos` always merges the file and the
journal, the latest row of a video winning. An embedded database (SQLite, DuckDB) would also give O(1) appends but
not a store that stays plain Parquet on any fsspec filesystem (object stores have no file locks): the journal keeps
both.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.arrays import STORED_MODALITIES

JOURNAL = "_journal"
_JOURNAL_UPTO = b"journal_upto"  # videos.parquet metadata: the sequence number of the last part it holds

# videos.parquet: one row per video; per-modality provenance columns for each stream in STORED_MODALITIES.
VIDEO_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
     ("sha256", pa.string()),
     ("duration", pa.float64()), ("fps", pa.float64()), ("status", pa.string()), ("error_stage", pa.string()),
     ("error_message", pa.string())]
    + [(f"{m}_{c}", pa.int64() if c == "rows" else pa.string()) for m in STORED_MODALITIES
       for c in ("extractor", "config_hash", "rows")]
    + [("models", pa.string()), ("versions", pa.string()), ("seconds", pa.float64()), ("updated", pa.string())])
VIDEO_COLUMNS = VIDEO_SCHEMA.names


class VideoTable:
    """The ``videos.parquet`` methods of :class:`pipeline.store.FeatureStore` (which provides ``path``, ``fs``,
    ``_read_file`` and ``_write_atomic``)."""

    def videos(self) -> pd.DataFrame:
        """One row per video: ``videos.parquet`` with the rows a run appended to the journal since (the latest
        row of a video wins); empty, with the documented columns, when there is none yet."""
        frame, upto = self._videos_file()
        parts = [p for seq, p in self._journal_parts() if seq > upto]
        if not parts:
            return frame
        tables = [self._read_file(p) for p in parts]
        journal = pa.concat_tables(tables, promote_options="default").to_pandas()
        merged = journal if frame.empty else pd.concat([frame, journal], ignore_index=True)
        merged = merged.drop_duplicates("video_id", keep="last")
        return merged.sort_values("video_id").reset_index(drop=True)

    def _videos_file(self) -> tuple[pd.DataFrame, int]:
        path = self.path("videos.parquet")
        if not self.fs.exists(path):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in VIDEO_COLUMNS}), 0
        table = self._read_file(path)
        return table.to_pandas(), int((table.schema.metadata or {}).get(_JOURNAL_UPTO, b"0"))

    def _upto(self) -> int:
        """The last journal part ``videos.parquet`` holds (its footer only)."""
        try:
            with self.fs.open(self.path("videos.parquet"), "rb") as f:
                return int((pq.read_schema(f).metadata or {}).get(_JOURNAL_UPTO, b"0"))
        except (OSError, pa.ArrowException):
            return 0

    def _journal_parts(self) -> list[tuple[int, str]]:
        """(sequence number, path) of the journal's parts, in order."""
        folder = self.path(JOURNAL)
        if not self.fs.exists(folder):
            return []
        parts = []
        for entry in self.fs.ls(folder, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("part-") and name.endswith(".parquet") and name[5:-8].isdigit():
                parts.append((int(name[5:-8]), entry))
        return sorted(parts)

    def append_videos(self, records: list[dict[str, Any]]) -> None:
        """Append rows to the journal as one small Parquet part: O(rows), whatever the size of the store.
        :meth:`videos` sees them at once; :meth:`compact_videos` folds them into ``videos.parquet``."""
        if not records:
            return
        parts = self._journal_parts()
        seq = (parts[-1][0] if parts else self._upto()) + 1
        self._write_atomic(_video_table(records), self.path(JOURNAL, f"part-{seq:012d}.parquet"))

    def compact_videos(self) -> bool:
        """Fold the journal into ``videos.parquet`` (one rewrite); False when there was nothing to fold."""
        if not self._journal_parts():
            return False
        self.write_videos(self.videos())
        return True

    def write_videos(self, frame: pd.DataFrame) -> None:
        """Rewrite ``videos.parquet`` atomically, with the fixed column types of :data:`VIDEO_SCHEMA`; ``frame``
        replaces every row, those of the journal included (its parts are then removed)."""
        if not frame["video_id"].is_unique:
            raise ValueError(f"{self.url}: videos.parquet holds one row per video; got duplicate video ids")
        parts = self._journal_parts()
        table = _video_table(frame.sort_values("video_id").to_dict("records"))
        # the file names the last part it holds: parts a kill leaves behind are ignored, then removed
        upto = parts[-1][0] if parts else self._upto()
        table = table.replace_schema_metadata({_JOURNAL_UPTO: str(upto).encode()})
        self._write_atomic(table, self.path("videos.parquet"))
        for _, path in parts:
            self.fs.rm(path)
        if parts:
            try:
                self.fs.rmdir(self.path(JOURNAL))
            except OSError:  # not empty (or an object store, where folders do not exist)
                pass

    def upsert_videos(self, records: list[dict[str, Any]], current: pd.DataFrame | None = None) -> pd.DataFrame:
        """Replace (or add) the rows of ``records``' videos and rewrite ``videos.parquet``; returns the new table."""
        current = self.videos() if current is None else current
        new = pd.DataFrame.from_records(records)
        keep = current[~current["video_id"].isin(new["video_id"])]
        frame = new if keep.empty else pd.concat([keep, new], ignore_index=True)
        self.write_videos(frame)
        return frame


def _video_table(records: list[dict[str, Any]]) -> pa.Table:
    """``videos.parquet`` rows with the fixed column types of :data:`VIDEO_SCHEMA`, extra columns after them."""
    columns = {}
    for f in VIDEO_SCHEMA:
        values = [plain_value(r.get(f.name)) for r in records]
        if f.name in ("models", "versions"):
            values = [v if v is None or isinstance(v, str) else json.dumps(v, sort_keys=True) for v in values]
        if pa.types.is_integer(f.type):
            values = [None if v is None else int(v) for v in values]
        columns[f.name] = pa.array(values, f.type)
    table = pa.table(columns, schema=VIDEO_SCHEMA)
    extra = sorted({c for r in records for c in r} - set(VIDEO_SCHEMA.names))
    for c in extra:
        table = table.append_column(c, pa.array([plain_value(r.get(c)) for r in records]))
    return table


def plain_value(value: Any) -> Any:
    """numpy scalars -> Python, NaN/NaT/None -> None (pandas' stand-ins for missing values)."""
    if value is None or (not isinstance(value, (str, bytes, list, dict)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value
