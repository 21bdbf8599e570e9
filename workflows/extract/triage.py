"""The triage task: videos of a rerun that are skipped without hashing or decoding anything."""
from __future__ import annotations

from pipeline.arrays import STORED_MODALITIES
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore
from workflows.extract.rows import Row, stream_columns, unchanged
from workflows.extract.worker import ExtractorSpec


def triage(items: list[tuple[VideoSource, Row]], store: FeatureStore, specs: tuple[ExtractorSpec, ...]
           ) -> list[Row | None]:
    """For each ``(source, previous row)``: the refreshed row when the video can be skipped without hashing (its
    size and mtime match a ``done`` row and every stream file is current for that hash), else None."""
    out: list[Row | None] = []
    for source, previous in items:
        try:
            st, same = unchanged(source, previous)
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
