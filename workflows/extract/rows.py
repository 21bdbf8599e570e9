"""A video's row of ``videos.parquet`` as the tasks build it, and whether a source file changed since its row.

A stream is up to date when its file says so (:meth:`pipeline.store.StreamInfo.is_current`: config hash, source
hash, row count), whatever the previous row claims; the row's stream columns are read back from the files.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any

from pipeline.arrays import STORED_MODALITIES
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore, StreamInfo
from workflows.extract.worker import library_versions

Row = dict[str, Any]


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


def unchanged(source: VideoSource, previous: Row | None) -> tuple[os.stat_result | None, bool]:
    """The file's stat, and whether size and modification time are those of ``previous`` (its hash still holds)."""
    try:
        st = os.stat(source.path)
    except OSError:
        return None, False
    same = bool(previous) and bool(previous.get("sha256")) and previous.get("size") == st.st_size \
        and previous.get("mtime_ns") == st.st_mtime_ns
    return st, same


def finish_row(store: FeatureStore, row: Row, errors: list[tuple[str, str]], computed: list[str],
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
