"""The merge task's one mechanism (``workflows.extract.merge``): a stream's staged chunks go through one function,
in order, and the store writes the result; ids that each chunk numbers from zero continue across the cuts."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipeline.store import FeatureStore
from tests.extractors.test_face_tracks import LEFT, RIGHT, _ids, _table
from tests.pipeline.streams import language, meta
from workflows.extract.merge import chunk_continuation


def _merge(store: FeatureStore, modality: str, chunks: list[pa.Table], metadata: dict[str, str]) -> pa.Table:
    for i, table in enumerate(chunks):
        store.write_chunk(modality, "v", i, table, {**metadata, "chunk": str(i)}, source_sha256="s")
    store.merge_chunks(modality, "v", list(range(len(chunks))), metadata, source_sha256="s",
                       each_chunk=chunk_continuation(modality))
    return store.read_stream(modality, ["v"])


def test_utterance_ids_continue_across_chunks(tmp_path):
    words = [[("a", 0.1, 0.3), ("b", 0.3, 0.5)], [], [("c", 31.0, 31.2), ("d", 32.0, 32.1)]]
    chunks = []
    for chunk in words:  # whisper numbers each chunk's segments from 0
        table = language(chunk, np.ones((len(chunk), 2), np.float32))
        chunks.append(table.set_column(0, "utterance", pa.array(range(len(chunk)), pa.int32())))
    table = _merge(FeatureStore(tmp_path), "language", chunks, meta("language", 2, None))
    assert table.column("word").to_pylist() == ["a", "b", "c", "d"]
    assert table.column("utterance").to_pylist() == [0, 1, 2, 3]


def test_a_face_keeps_its_id_across_a_cut(tmp_path):
    first = _table([(0.0, [RIGHT]), (0.1, [RIGHT])])
    second = _table([(0.2, [LEFT, RIGHT])])  # numbered on its own: left 0, right 1
    table = _merge(FeatureStore(tmp_path), "visual", [first, second], {"config_hash": "0" * 16})
    # the right face (x0 0.6) stays 0, the left one, new after the cut, is 1
    assert _ids(table) == [(0.0, 0, 0.6), (0.1, 0, 0.6), (0.2, 0, 0.6), (0.2, 1, 0.1)]


def test_frame_streams_join_as_they_are():
    assert chunk_continuation("acoustic") is None and chunk_continuation("voice") is None
