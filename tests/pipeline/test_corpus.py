"""Corpus inputs: folder scans with stable ids, manifests with segments and labels."""
from __future__ import annotations

import pytest

from pipeline.corpus import load_corpus, read_manifest, scan_folder, segments_of, video_id_from_path


def test_scan_folder_recursive_stable_ids(tmp_path):
    for rel in ["b.mp4", "sub dir/a.MOV", "sub dir/a.mp4", "notes.txt", ".hidden/x.mp4", "c.flv"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    sources = scan_folder(tmp_path)
    assert [s.video_id for s in sources] == ["b", "c", "sub_dir__a_mov", "sub_dir__a_mp4"]
    assert all(s.segments == () for s in sources)
    assert [s.video_id for s in load_corpus(tmp_path)] == [s.video_id for s in sources]
    assert segments_of(sources[0])[0].segment_id == "b" and segments_of(sources[0])[0].end is None
    assert video_id_from_path("talks/day 1/intro.mp4") == "talks__day_1__intro"


def test_manifest_segments_labels_and_relative_paths(tmp_path):
    (tmp_path / "v").mkdir()
    csv = tmp_path / "corpus.csv"
    csv.write_text("path,video_id,start,end,split,sentiment,speaker\n"
                   "v/long.mp4,talk,0,3.5,train,1.5,ann\n"
                   "v/long.mp4,talk,3.5,7,test,-0.5,ann\n"
                   "/abs/other.mov,,,,,,bob\n")
    sources = read_manifest(csv)
    assert [s.video_id for s in sources] == ["talk", "abs__other"]  # from the path as written
    talk = sources[0]
    assert talk.path == str((tmp_path / "v/long.mp4").resolve())
    assert [(s.segment_id, s.start, s.end, s.split) for s in talk.segments] == [
        ("talk_0", 0.0, 3.5, "train"), ("talk_1", 3.5, 7.0, "test")]
    assert talk.segments[1].labels == {"sentiment": -0.5, "speaker": "ann"}
    other = sources[1].segments[0]
    assert (other.start, other.end, other.split, other.labels) == (0.0, None, None, {"speaker": "bob"})


@pytest.mark.parametrize("body, match", [
    ("video_id\nx\n", "'path' column"),
    ("path,start,end\na.mp4,2,1\n", "ends"),
    ("path,start\na.mp4,soon\n", "not a number"),
    ("path,video_id\na.mp4,x\nb.mp4,x\n", "names two files"),
    ("path,video_id\na.mp4,../up\n", "invalid video_id"),
    ("path,video_id\n,x\n", "no path"),
    ("path\n" + "x" * 200_000 + "\n", "not a readable CSV"),
])
def test_bad_manifests_say_what_is_wrong(tmp_path, body, match):
    csv = tmp_path / "m.csv"
    csv.write_text(body)
    with pytest.raises(ValueError, match=match):
        read_manifest(csv)


def test_ids_that_collide_are_refused(tmp_path):
    for name in ("a.mp4", "a.mov", "a_mp4.mkv"):  # a.mp4 -> a_mp4 (the suffix kept), as a_mp4.mkv
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ValueError, match="'a_mp4'.*manifest"):
        scan_folder(tmp_path)


def test_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_corpus(tmp_path / "nope")
