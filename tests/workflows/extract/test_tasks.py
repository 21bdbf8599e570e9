"""The per-video task and the CLI helpers, in process (no cluster): staleness, failures, provenance."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore
from tests.pipeline.streams import frames, meta
from workflows.commands.extract import format_failures, format_skipped, format_summary, parse_options
from workflows.extract import ExtractorSpec, ExtractSummary, build_extractors, extract_video

CREMAD = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "cremad"


def _clip(tmp_path: Path) -> Path:
    feat = pytest.importorskip("feat")
    sample = Path(feat.__file__).parent / "tests" / "data" / "single_face.mp4"
    src = sorted(CREMAD.glob("*.flv"))[0] if CREMAD.exists() else sample
    dst = tmp_path / f"clip{src.suffix}"
    shutil.copy(src, dst)  # a private copy: the test rewrites it
    return dst


def _spec(**overrides) -> tuple[ExtractorSpec, ...]:
    options = {"acoustic": overrides} if overrides else None
    names = {"language": None, "acoustic": "librosa", "visual": None, "voice": None}  # librosa's stream alone
    return tuple(ExtractorSpec.of(e) for e in build_extractors(names, options))


def test_task_computes_then_skips_then_recomputes_on_change(tmp_path):
    store, clip = FeatureStore(tmp_path / "store"), _clip(tmp_path)
    source = VideoSource("clip", str(clip))
    first = extract_video(source, store, _spec(), None)
    assert (first["_outcome"], first["_computed"], first["status"]) == ("done", ["acoustic"], "done")
    assert first["acoustic_rows"] == store.read_stream("acoustic").num_rows > 0
    assert first["duration"] > 1 and len(first["sha256"]) == 64 and first["size"] == clip.stat().st_size
    assert json.loads(first["versions"])["pyarrow"] and json.loads(first["models"])["acoustic"]["extractor"]
    meta = store.stream_metadata("acoustic")
    assert meta["config_hash"] == first["acoustic_config_hash"] and meta["extractor"] == "librosa"
    previous = {k: v for k, v in first.items() if not k.startswith("_")}

    assert extract_video(source, store, _spec(), previous)["_outcome"] == "skipped"
    assert extract_video(source, store, _spec(), previous, force=True)["_computed"] == ["acoustic"]
    hop = extract_video(source, store, _spec(hop=0.02), previous)
    assert hop["_computed"] == ["acoustic"] and hop["acoustic_rows"] < first["acoustic_rows"]
    store.delete_stream("acoustic", "clip")  # a lost file is recomputed even though the row says done
    assert extract_video(source, store, _spec(), previous)["_computed"] == ["acoustic"]

    clip.write_bytes(clip.read_bytes() + b"\0")  # the source changed: its hash no longer matches
    changed = extract_video(source, store, _spec(), previous)
    assert changed["_computed"] == ["acoustic"] and changed["sha256"] != first["sha256"]


def _row(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def _audio(tmp_path: Path) -> VideoSource:
    from tests.extractors.media_files import write_media

    return VideoSource("memo", str(write_media(tmp_path / "memo.m4a", video=False, seconds=1.0)))


def test_the_file_decides_what_is_current_not_the_row(tmp_path):
    store, source = FeatureStore(tmp_path / "store"), _audio(tmp_path)
    old = _row(extract_video(source, store, _spec(), None))
    info = store.stream_info("acoustic", "memo")
    assert (info.rows, info.source_sha256, info.config_hash) == (old["acoustic_rows"], old["sha256"],
                                                                 old["acoustic_config_hash"])
    # the issue: a hop-0.02 run rewrites the file and is killed before its row is written
    extract_video(source, store, _spec(hop=0.02), old)
    back = extract_video(source, store, _spec(), old)  # the old config, with the row that still says "old"
    assert back["_computed"] == ["acoustic"] and back["acoustic_rows"] == old["acoustic_rows"]
    assert store.stream_info("acoustic", "memo").rows == old["acoustic_rows"]

    # a row that lies about a current file is corrected from the file, not trusted
    lying = {**old, "acoustic_rows": 999, "acoustic_config_hash": "f" * 16, "acoustic_extractor": "other"}
    skipped = extract_video(source, store, _spec(), lying)
    assert skipped["_outcome"] == "skipped"
    assert (skipped["acoustic_rows"], skipped["acoustic_config_hash"], skipped["acoustic_extractor"]) == (
        old["acoustic_rows"], old["acoustic_config_hash"], "librosa")
    assert json.loads(skipped["models"]) == json.loads(old["models"])

    # a stream file written before then (without source_sha256 and rows) is stale
    path = store.stream_path("acoustic", "memo")
    table = pq.read_table(path)
    legacy = {k: v for k, v in table.schema.metadata.items() if k not in (b"source_sha256", b"rows")}
    pq.write_table(table.replace_schema_metadata(legacy), path)
    assert extract_video(source, store, _spec(), old)["_computed"] == ["acoustic"]


def test_streams_written_before_a_kill_are_kept_and_streams_of_another_source_are_not(tmp_path):
    store, source = FeatureStore(tmp_path / "store"), _audio(tmp_path)
    first = _row(extract_video(source, store, _spec(), None))
    # killed before the client wrote any row: the file is current, nothing is recomputed, the row is read from it
    again = extract_video(source, store, _spec(), None)
    assert (again["_outcome"], again["_computed"]) == ("done", [])
    assert (again["acoustic_rows"], again["acoustic_config_hash"]) == (first["acoustic_rows"],
                                                                       first["acoustic_config_hash"])
    assert again["duration"] == first["duration"]

    # a visual file of this source (a modality this run does not extract) stays; one of another source goes
    import numpy as np

    store.write_stream("visual", "memo", frames(np.zeros(2), np.zeros((2, 3), np.float32)), meta("visual", 3, 0.1),
                       source_sha256=first["sha256"])
    kept = extract_video(source, store, _spec(), first)
    assert kept["_outcome"] == "skipped" and kept["visual_rows"] == 2 and kept["visual_extractor"] == "test-visual"
    store.write_stream("visual", "memo", frames(np.zeros(2), np.zeros((2, 3), np.float32)), meta("visual", 3, 0.1),
                       source_sha256="0" * 64)
    gone = extract_video(source, store, _spec(), first)
    assert not store.has_stream("visual", "memo") and gone["visual_rows"] is None and gone["_computed"] == []
    assert "visual" not in json.loads(gone["models"])


def test_task_records_missing_and_broken_files(tmp_path):
    store = FeatureStore(tmp_path / "store")
    missing = extract_video(VideoSource("gone", str(tmp_path / "gone.mp4")), store, _spec(), None)
    assert (missing["status"], missing["error_stage"]) == ("failed", "read")
    assert "no such file" in missing["error_message"]
    (tmp_path / "bad.mp4").write_text("not a video")
    bad = extract_video(VideoSource("bad", str(tmp_path / "bad.mp4")), store, _spec(), None)
    assert (bad["status"], bad["error_stage"], bad["_computed"]) == ("failed", "decode", [])
    assert bad["sha256"] and store.stream_video_ids("acoustic") == []


def test_cli_helpers():
    assert parse_options(["acoustic.hop=0.02", "visual.fps=5", "language.model=tiny"]) == {
        "acoustic": {"hop": 0.02}, "visual": {"fps": 5}, "language": {"model": "tiny"}}
    with pytest.raises(ValueError, match="MODALITY.FIELD=VALUE"):
        parse_options(["hop=3"])
    table = format_failures([{"video_id": "bad", "stage": "decode", "message": "x" * 500}], width=80)
    assert table.splitlines()[2].startswith("bad") and len(table.splitlines()[2]) <= 80
    text = format_summary(ExtractSummary(done=2, skipped=1, failed=1, media_seconds=7200, wall_seconds=60,
                                         workers=2, computed={"acoustic": 2}))
    assert "2 extracted, 1 up to date (skipped), 1 failed" in text and "2.000 h" in text and "120.00x" in text
    assert "no file passed over" in text
    skipped = [{"path": f"in/n{i}.txt", "reason": "not a video or audio file (.txt)"} for i in range(25)]
    skipped.append({"path": "in/.git", "reason": "hidden folder (not scanned)"})
    assert "26 files passed over" in format_summary(ExtractSummary(skipped_files=skipped))
    listing = format_skipped(skipped).splitlines()
    assert listing[0] == "skipped 26 files:" and listing[1] == "  in/n0.txt: not a video or audio file (.txt)"
    assert listing[-1] == "  ... and 6 more: 1 hidden folder, 5 not a video or audio file"
