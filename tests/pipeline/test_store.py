"""FeatureStore: layout, atomic writes, round trips, and readability by pyarrow.dataset, pandas and dask."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipeline.store import (MAX_VIDEO_ID_LENGTH, VIDEO_SCHEMA, FeatureStore, check_video_id, feature_matrix,
                            stream_is_current)
from tests.pipeline.streams import frames, meta


def _acoustic(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return frames(np.arange(n) * 0.01, rng.normal(size=(n, 3)).astype(np.float32))


def test_stream_round_trip_and_layout(tmp_path):
    store = FeatureStore(tmp_path / "store")
    a, b = _acoustic(5, 0), _acoustic(7, 1)
    store.write_stream("acoustic", "vid_b", b, meta("acoustic", 3, 0.01))
    store.write_stream("acoustic", "vid_a", a, meta("acoustic", 3, 0.01))
    assert (tmp_path / "store/acoustic/video_id=vid_a/part.parquet").is_file()
    assert store.stream_video_ids("acoustic") == ["vid_a", "vid_b"]
    t = store.read_stream("acoustic")
    assert t.column_names == ["video_id", "time", "features"]
    assert t.column("video_id").to_pylist() == ["vid_a"] * 5 + ["vid_b"] * 7
    np.testing.assert_array_equal(feature_matrix(t)[:5], feature_matrix(a))
    assert t.schema.field("features").type == pa.list_(pa.float32(), 3)
    assert store.read_stream("acoustic", ["vid_b", "missing"]).num_rows == 7
    assert store.stream_metadata("acoustic")["extractor"] == "test-acoustic"
    # a rewrite replaces, never appends
    store.write_stream("acoustic", "vid_a", _acoustic(2, 3))
    assert store.read_stream("acoustic", ["vid_a"]).num_rows == 2
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".tmp")]


def test_readable_by_pyarrow_pandas_and_dask(tmp_path):
    import dask.dataframe as dd

    store = FeatureStore(tmp_path)
    for i, vid in enumerate(["0001", "x-2"]):  # a numeric-looking id must stay a string
        store.write_stream("acoustic", vid, _acoustic(4 + i, i), meta("acoustic", 3, 0.01))
    table = store.dataset("acoustic").to_table()
    assert table.num_rows == 9 and table.schema.field("video_id").type == pa.string()
    assert sorted(set(table.column("video_id").to_pylist())) == ["0001", "x-2"]
    frame = pd.read_parquet(tmp_path / "acoustic")
    assert len(frame) == 9 and len(frame["features"].iloc[0]) == 3
    dframe = dd.read_parquet(str(tmp_path / "acoustic")).compute()
    assert len(dframe) == 9
    raw = ds.dataset(tmp_path / "acoustic", format="parquet", partitioning="hive").to_table()
    assert raw.schema.metadata[b"feature_names"] == b'["acoustic_0", "acoustic_1", "acoustic_2"]'


def test_readable_by_duckdb_with_the_video_id_from_the_folder(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    store = FeatureStore(tmp_path)
    for i, vid in enumerate(["a", "b"]):
        store.write_stream("acoustic", vid, _acoustic(4 + i, i), meta("acoustic", 3, 0.01))
    rows = duckdb.sql(f"select video_id, count(*), max(len(features)) from '{tmp_path}/acoustic/*/*.parquet' "
                      "group by 1 order by 1").fetchall()
    assert rows == [("a", 4, 3), ("b", 5, 3)]


def test_killed_writer_leaves_only_hidden_temporaries(tmp_path):
    store = FeatureStore(tmp_path)
    store.write_stream("visual", "v", _acoustic(3, 0))
    folder = tmp_path / "visual" / "video_id=v"
    (folder / ".part.parquet.deadbeef.tmp").write_bytes(b"PAR1 half a file")  # what a SIGKILL leaves
    assert store.read_stream("visual").num_rows == 3
    assert ds.dataset(tmp_path / "visual", format="parquet", partitioning="hive").to_table().num_rows == 3
    assert store.cleanup_temporary() == 1
    assert [p.name for p in folder.iterdir()] == ["part.parquet"]


def test_videos_and_segments_upsert(tmp_path):
    store = FeatureStore(tmp_path)
    assert store.videos().empty and "sha256" in store.videos().columns
    store.upsert_videos([{"video_id": "a", "status": "done", "duration": 1.5},
                         {"video_id": "b", "status": "failed", "error_stage": "decode", "error_message": "bad"}])
    store.upsert_videos([{"video_id": "a", "status": "done", "duration": 2.5}])
    v = store.videos().set_index("video_id")
    assert list(v.index) == ["a", "b"] and v.loc["a", "duration"] == 2.5 and v.loc["b", "error_stage"] == "decode"
    store.upsert_videos([{"video_id": "c", "status": "done", "acoustic_rows": 12, "size": 3}])
    schema = pq.read_schema(tmp_path / "videos.parquet")  # fixed types, whatever the rows hold
    assert schema.field("acoustic_rows").type == pa.int64() and schema.field("fps").type == pa.float64()
    assert schema.names == VIDEO_SCHEMA.names
    assert store.videos().set_index("video_id").loc["c", "acoustic_rows"] == 12
    seg = pd.DataFrame({"video_id": ["a", "a"], "segment_id": ["a_1", "a_0"], "start": [3.0, 0.0],
                        "end": [4.0, 3.0], "split": ["train", "test"], "label": [0.5, -1.0]})
    store.write_segments(seg)
    store.write_segments(pd.DataFrame({"video_id": ["b"], "segment_id": ["b"], "start": [0.0], "end": [None],
                                       "split": [None]}))
    s = store.segments()
    assert list(s["segment_id"]) == ["a_0", "a_1", "b"] and s["label"].iloc[0] == -1.0
    assert pd.isna(s["end"].iloc[2]) and pq.read_schema(tmp_path / "segments.parquet").field("end").type == pa.float64()
    with pytest.raises(ValueError, match="given twice"):
        store.write_segments(pd.concat([seg, seg]))


def test_file_url_is_the_same_store_as_its_path(tmp_path):
    FeatureStore(f"file://{tmp_path}").write_stream("acoustic", "f", _acoustic(3, 0))
    assert FeatureStore(f"file://{tmp_path}").is_local
    assert FeatureStore(tmp_path).read_stream("acoustic").num_rows == 3


def test_fsspec_memory_url_round_trip():
    store = FeatureStore("memory://mcr-test-store")
    store.write_stream("acoustic", "m", _acoustic(4, 0))
    store.upsert_videos([{"video_id": "m", "status": "done"}])
    assert store.read_stream("acoustic").num_rows == 4
    assert list(store.videos()["video_id"]) == ["m"]
    assert not [p for p in store.fs.find(store.root) if p.endswith(".tmp")]


def test_a_stream_file_says_what_it_holds_and_only_it_decides_what_is_current(tmp_path):
    store = FeatureStore(tmp_path)
    current = {"config_hash": "0" * 16, "source_sha256": "s" * 64}
    store.write_stream("acoustic", "v", _acoustic(5, 0), meta("acoustic", 3, 0.01), source_sha256="s" * 64)
    info = store.stream_info("acoustic", "v")
    assert (info.rows, info.extractor, info.config_hash, info.source_sha256) == (5, "test-acoustic", "0" * 16, "s" * 64)
    assert info.metadata["rows"] == "5" and stream_is_current(store, "acoustic", "v", **current)
    assert not stream_is_current(store, "acoustic", "v", **{**current, "config_hash": "1" * 16})
    assert not stream_is_current(store, "acoustic", "v", **{**current, "source_sha256": "t" * 64})
    assert store.stream_info("acoustic", "none") is None
    assert not stream_is_current(store, "acoustic", "none", **current)

    path = store.stream_path("acoustic", "v")
    pq.write_table(pq.read_table(path).slice(0, 3), path)  # rows cut behind the store's back, metadata kept
    assert store.stream_info("acoustic", "v").rows == 3 and not stream_is_current(store, "acoustic", "v", **current)
    old = store.stream_path("acoustic", "old")  # written by a version that recorded neither source nor rows
    os.makedirs(os.path.dirname(old))
    pq.write_table(_acoustic(4, 0).replace_schema_metadata(meta("acoustic", 3, 0.01)), old)
    assert store.stream_info("acoustic", "old").rows == 4
    assert not stream_is_current(store, "acoustic", "old", **current)
    with open(path, "wb") as f:  # not Parquet at all
        f.write(b"PAR1 not really")
    assert store.stream_info("acoustic", "v") is None and not stream_is_current(store, "acoustic", "v", **current)


def test_rows_go_to_the_journal_in_o1_and_are_folded_into_videos_parquet(tmp_path):
    store = FeatureStore(tmp_path)
    store.append_videos([{"video_id": "a", "status": "done", "size": 1, "mtime_ns": 5}])
    store.append_videos([{"video_id": "b", "status": "failed"}, {"video_id": "a", "status": "failed", "size": 2}])
    assert len(list((tmp_path / "_journal").iterdir())) == 2 and not (tmp_path / "videos.parquet").exists()
    v = store.videos().set_index("video_id")
    assert list(v.index) == ["a", "b"] and (v.loc["a", "status"], v.loc["a", "size"]) == ("failed", 2)
    assert store.compact_videos() and not store.compact_videos()
    assert not (tmp_path / "_journal").exists()
    plain = pd.read_parquet(tmp_path / "videos.parquet")  # readable as it is once the run is over
    assert sorted(plain["video_id"]) == ["a", "b"] and pq.read_schema(tmp_path / "videos.parquet").names[:4] == [
        "video_id", "path", "size", "mtime_ns"]

    # killed after videos.parquet was renamed, before the parts it holds were removed: they are not applied again
    store.append_videos([{"video_id": "c", "status": "done"}])
    (part,) = (tmp_path / "_journal").iterdir()
    saved = part.read_bytes()
    store.write_videos(store.videos()[lambda f: f["video_id"] != "a"])  # e.g. `mcr store prune`
    part.parent.mkdir(exist_ok=True)
    part.write_bytes(saved)
    assert sorted(store.videos()["video_id"]) == ["b", "c"]
    store.append_videos([{"video_id": "d", "status": "done"}])  # numbered after the leftover
    assert sorted(store.videos()["video_id"]) == ["b", "c", "d"]
    store.compact_videos()
    assert sorted(pd.read_parquet(tmp_path / "videos.parquet")["video_id"]) == ["b", "c", "d"]
    assert not (tmp_path / "_journal").exists()


def test_chunks_merge_into_one_stream_file_through_one_function_per_chunk(tmp_path):
    from tests.pipeline.streams import language

    store = FeatureStore(tmp_path)
    words = [[("a", 0.1, 0.3), ("b", 0.3, 0.5)], [], [("c", 31.0, 31.2), ("d", 32.0, 32.1)]]
    for i, chunk in enumerate(words):
        store.write_chunk("language", "v", i, language(chunk, np.ones((len(chunk), 2), np.float32)),
                          {**meta("language", 2, None), "chunk": str(i)}, source_sha256="s")
    assert store.chunk_info("language", "v", 2).rows == 2 and store.stream_video_ids("language") == []
    assert not (tmp_path / "language").exists()  # staging lives apart, where no reader of a modality looks
    seen = []

    def each_chunk(table: pa.Table) -> pa.Table:  # state carried from chunk to chunk, as the merge task's ids are
        seen.append(table.column("word").to_pylist())
        return table.set_column(0, "utterance", pa.array([len(seen)] * table.num_rows, pa.int32()))

    store.merge_chunks("language", "v", [0, 1, 2], meta("language", 2, None), source_sha256="s",
                       each_chunk=each_chunk)
    assert seen == [["a", "b"], ["c", "d"]]  # in order; the empty chunk adds nothing
    table = store.read_stream("language", ["v"])
    assert table.column("word").to_pylist() == ["a", "b", "c", "d"]
    assert table.column("utterance").to_pylist() == [1, 1, 2, 2]
    info = store.stream_info("language", "v")
    assert info.rows == 4 and info.is_current(config_hash="0" * 16, source_sha256="s") and "chunk" not in info.metadata
    assert len(pd.read_parquet(tmp_path / "language")) == 4
    store.delete_chunks("v")
    assert not (tmp_path / "_chunks" / "video_id=v").exists()


@pytest.mark.parametrize("good", ["a", "0001", "A.b_c-d", "x" * MAX_VIDEO_ID_LENGTH, "talk.."])
def test_video_ids_that_name_a_folder(good):
    assert check_video_id(good) == good


@pytest.mark.parametrize("bad, why", [
    ("", "letters"), ("abc\n", "letters"),  # `$` matches before a trailing newline; fullmatch does not
    ("\nabc", "letters"), ("a\x00b", "letters"), ("../x", "letters"), ("a/b", "letters"), ("a\\b", "letters"),
    (".hidden", "starting"), ("_x", "starting"), ("-x", "starting"), ("a b", "letters"), ("a=b", "letters"),
    ("café", "ASCII"), ("ｘ", "ASCII"), ("x" * (MAX_VIDEO_ID_LENGTH + 1), "at most 100"),
    ("x" * 250, "250 characters"),
    (None, "not a string"), (7, "not a string"),
])
def test_video_ids_that_cannot_name_a_folder_are_refused(bad, why):
    with pytest.raises(ValueError, match=why):
        check_video_id(bad)
    with pytest.raises(ValueError):  # nor can the store be asked for its files
        FeatureStore("unused").stream_path("acoustic", bad)
