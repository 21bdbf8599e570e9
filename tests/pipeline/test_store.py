"""FeatureStore: layout, atomic writes, round trips, and readability by pyarrow.dataset, pandas and dask."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipeline.store import VIDEO_SCHEMA, FeatureStore, check_video_id, feature_matrix
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


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "_x", "a b", "a=b"])
def test_video_ids_that_cannot_name_a_folder_are_refused(bad):
    with pytest.raises(ValueError):
        check_video_id(bad)
