"""The per-video task and the CLI helpers, in process (no cluster): staleness, failures, provenance."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore
from workflows.commands.extract import format_failures, format_summary, parse_options
from workflows.extract import ExtractorSpec, ExtractSummary, build_extractors, extract_video

CREMAD = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cremad"


def _clip(tmp_path: Path) -> Path:
    feat = pytest.importorskip("feat")
    sample = Path(feat.__file__).parent / "tests" / "data" / "single_face.mp4"
    src = sorted(CREMAD.glob("*.flv"))[0] if CREMAD.exists() else sample
    dst = tmp_path / f"clip{src.suffix}"
    shutil.copy(src, dst)  # a private copy: the test rewrites it
    return dst


def _spec(**overrides) -> tuple[ExtractorSpec, ...]:
    options = {"acoustic": overrides} if overrides else None
    return tuple(ExtractorSpec.of(e) for e in build_extractors({"language": None, "visual": None}, options))


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
