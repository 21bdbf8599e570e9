"""`mcr label` (labels, segments and splits of extracted videos, without re-extraction) and `mcr store ls/prune`, on a
small real store."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.store import FeatureStore
from pipeline.store_source import store_splits
from tests.pipeline.test_sources import _small_store
from workflows.cli import main


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    """Two extracted videos (v1, v2: words, acoustic and visual frames, numeric labels) and one failed (v3)."""
    store = _small_store(tmp_path / "store")
    store.upsert_videos([
        {"video_id": "v1", "path": str(tmp_path / "clips" / "first take.mp4"), "status": "done", "duration": 2.0},
        {"video_id": "v2", "path": str(tmp_path / "clips" / "v2.mp4"), "status": "done", "duration": 2.5},
        {"video_id": "v3", "path": str(tmp_path / "clips" / "v3.mp4"), "status": "failed", "error_stage": "decode",
         "error_message": "corrupt"}])
    return store


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_label_replaces_segments_labels_and_splits_and_train_sees_them(store, tmp_path, capsys):
    manifest = write(tmp_path / "labels.csv", "video_id,start,end,split,label,intensity\n"
                     "v1,0,1,train,happy,high\nv1,1,2,valid,sad,\nv2,0,2,train,sad,low\n")
    assert main(["label", store.url, manifest]) == 0
    assert "replaced the 4 segments of 2 videos by 3 segments" in capsys.readouterr().out
    segments = store.segments()
    assert segments[["video_id", "segment_id", "start", "end", "split", "label"]].values.tolist() == [
        ["v1", "v1_0", 0.0, 1.0, "train", "happy"], ["v1", "v1_1", 1.0, 2.0, "valid", "sad"],
        ["v2", "v2_0", 0.0, 2.0, "train", "sad"]]
    assert segments["intensity"].tolist()[::2] == ["high", "low"] and segments["intensity"].isna().tolist()[1]
    splits = store_splits(store.url)  # what `mcr train --data STORE` loads
    assert sorted(splits) == ["train", "valid"] and splits["train"].classes == ["happy", "sad"]
    assert splits["valid"].ids == ["v1_1"]


def test_label_finds_videos_by_recorded_path_and_by_file_stem_and_keeps_what_it_is_not_given(store, tmp_path, capsys):
    before = store.segments().set_index("segment_id")
    # v1 by the path videos.parquet records; v2 by its file's stem; segments named without times keep theirs
    clips = tmp_path / "clips"
    clips.mkdir()
    manifest = write(clips / "m.csv", "path,segment_id,label\nfirst take.mp4,v1_1,-2.5\n"
                     "/elsewhere/v2.mp4,v2_0,0.5\n/elsewhere/v2.mp4,v2_1,1\n")
    assert main(["label", store.url, manifest]) == 0
    after = store.segments().set_index("segment_id")
    assert list(after.index) == ["v1_1", "v2_0", "v2_1"]
    assert after["label"].tolist() == [-2.5, 0.5, 1.0]
    for column in ("start", "end", "split"):  # no times, no split column: the store's are kept
        assert after[column].tolist() == before.loc[after.index, column].tolist()
    assert "v1_0" not in after.index  # the manifest's segments replace the video's


def test_label_refuses_unknown_videos_unless_told(store, tmp_path, capsys):
    manifest = write(tmp_path / "m.csv", "video_id,label\nv1,1.5\nnope,2\n")
    assert main(["label", store.url, manifest]) == 2
    err = capsys.readouterr().err
    assert "m.csv: [label] 1 videos are not in the store" in err and "nope" in err and "--skip-unknown" in err
    assert store.segments()["label"].tolist()[:2] == [1.5, -0.5]  # nothing written
    assert main(["label", store.url, manifest, "--skip-unknown"]) == 0
    assert "skipped   : 1 videos not in the store: nope" in capsys.readouterr().out
    segments = store.segments()
    v1 = segments[segments["video_id"] == "v1"]
    assert v1[["segment_id", "start", "label"]].values.tolist() == [["v1_0", 0.0, 1.5]]
    assert v1["end"].isna().all() and v1["split"].isna().all()  # no segment_id given: the whole video, no split
    assert segments[segments["video_id"] == "v2"]["label"].tolist()[0] == 2.0  # other videos untouched


def test_label_dry_run_and_type_clash(store, tmp_path, capsys):
    segments = store.segments()
    assert main(["label", store.url, write(tmp_path / "m.csv", "video_id,label\nv1,3\n"), "--dry-run"]) == 0
    assert "would replace the 2 segments of 1 videos by 1 segments" in capsys.readouterr().out
    assert store.segments().equals(segments)
    manifest = write(tmp_path / "text.csv", "video_id,label\nv1,happy\n")
    assert main(["label", store.url, manifest]) == 2  # v2 keeps numbers in the same column
    err = capsys.readouterr().err
    assert "text.csv: [label] column 'label' would hold text for some segments and numbers for others" in err
    assert store.segments().equals(segments)


def test_store_ls(store, capsys):
    assert main(["store", "ls", store.url]) == 0
    text = capsys.readouterr().out
    assert "videos    : 3 (2 done, 1 failed)" in text and "segments  : 4 of 2 videos" in text
    assert "splits    : train 2, valid 2" in text
    assert all(f"{m} 2 videos" in text for m in ("language", "acoustic", "visual"))
    assert "label: 3 labelled: -0.50..2.00" in text and "failed    : v3 [decode] corrupt" in text
    assert main(["store", "ls", store.url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == {"total": 3, "done": 2, "failed": 1} and summary["duration_seconds"] == 4.5
    assert summary["labels"]["label"] == {"labelled": 3, "min": -0.5, "max": 2.0, "mean": 1.0}
    assert summary["streams"] == {"language": 2, "acoustic": 2, "visual": 2, "voice": 0}  # made by hand: no voice


def test_store_ls_counts_text_labels(store, tmp_path, capsys):
    main(["label", store.url, write(tmp_path / "m.csv", "video_id,label\nv1,sad\nv2,sad\n")])
    capsys.readouterr()
    assert main(["store", "ls", store.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"]["label"] == {"labelled": 2, "counts": {"sad": 2}}


def test_store_prune(store, tmp_path, capsys):
    manifest = write(tmp_path / "keep.csv", "path,label\nclips/v2.mp4,1\n")
    assert main(["store", "prune", store.url, manifest]) == 0
    assert "would remove 2 videos, keep 1" in capsys.readouterr().out
    assert store.stream_video_ids("visual") == ["v1", "v2"]  # a dry run by default
    assert main(["store", "prune", store.url, manifest, "--yes"]) == 0
    assert "removed 2 videos, kept 1: v1, v3" in capsys.readouterr().out
    assert all(store.stream_video_ids(m) == ["v2"] for m in ("language", "acoustic", "visual"))
    assert not Path(store.path("visual", "video_id=v1")).exists()
    assert store.videos()["video_id"].tolist() == ["v2"] and set(store.segments()["video_id"]) == {"v2"}
    assert main(["store", "prune", store.url, manifest, "--yes"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_store_prune_refuses_a_manifest_naming_nothing(store, tmp_path, capsys):
    manifest = write(tmp_path / "other.csv", "video_id\nsomething_else\n")
    assert main(["store", "prune", store.url, manifest, "--yes"]) == 2
    assert "name none of the store's videos; nothing removed" in capsys.readouterr().err
    assert store.stream_video_ids("visual") == ["v1", "v2"]


def test_store_errors_and_help(tmp_path, capsys):
    assert main(["store", "ls", str(tmp_path / "nowhere")]) == 2
    assert "[store] not a feature store" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):  # --debug after the action is parsed: the traceback, not a usage error
        main(["store", "ls", str(tmp_path / "nowhere"), "--debug"])
    for action in ("ls", "prune"):
        with pytest.raises(SystemExit) as exit_:
            main(["store", action, "--help"])
        assert exit_.value.code == 0 and f"usage: mcr store {action}" in capsys.readouterr().out
