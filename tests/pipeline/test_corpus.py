"""Corpus inputs: folder scans with stable ids, manifests with segments and labels."""
from __future__ import annotations

import os
import pickle

import pytest

from pipeline.corpus import Corpus, load_corpus, read_manifest, scan_folder, segments_of, video_id_from_path
from pipeline.store import MAX_VIDEO_ID_LENGTH, check_video_id


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
    ("path,video_id\na.mp4,ok\nb.mp4," + "x" * 250 + "\n", r"m\.csv:3: invalid video_id .*250 characters"),
    ('path,video_id\na.mp4,"talk\n"\n', r"m\.csv:2: invalid video_id 'talk\\n'"),
    ("path,video_id\na.mp4, talk\n", "m.csv:2: invalid video_id ' talk'"),
    ("path,video_id\na.mp4,café\n", "m.csv:2: invalid video_id"),
    ('path,segment_id\na.mp4,"s\n1"\n', "m.csv:2: invalid segment_id"),
    ("path,segment_id\na.mp4,   \n", "m.csv:2: invalid segment_id"),
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


def read_manifest_of(folder, body):
    (folder / "m.csv").write_text(body)
    return read_manifest(folder / "m.csv")


def _touch(root, *names):
    for rel in names:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_scan_takes_audio_files_and_lists_what_it_passes_over(tmp_path):
    _touch(tmp_path, "talk.mp4", "voice/memo.WAV", "voice/song.flac", "radio.mp3", "notes.txt", "README",
           ".DS_Store", ".git/objects/ab", "sub/.cache.mp4")
    (tmp_path / "linked").symlink_to(tmp_path / "voice", target_is_directory=True)
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    os.mkfifo(tmp_path / "pipe.wav")
    corpus = scan_folder(tmp_path)
    assert [s.video_id for s in corpus] == ["radio", "talk", "voice__memo", "voice__song"]
    assert isinstance(corpus, list) and isinstance(corpus, Corpus)
    assert {os.path.relpath(s["path"], tmp_path): s["reason"] for s in corpus.skipped} == {
        ".DS_Store": "hidden file", ".git": "hidden folder (not scanned)", "sub/.cache.mp4": "hidden file",
        "linked": "link to a folder (not followed)", "gone.mp4": "broken link", "pipe.wav": "not a regular file",
        "notes.txt": "not a video or audio file (.txt)", "README": "not a video or audio file (no suffix)"}
    assert load_corpus(tmp_path).skipped == corpus.skipped
    again = pickle.loads(pickle.dumps(corpus))  # it travels to Dask workers and back
    assert again == corpus and again.skipped == corpus.skipped
    assert read_manifest_of(tmp_path, "path\ntalk.mp4\n").skipped == []


def test_long_file_names_get_short_stable_ids(tmp_path):
    long_a, long_b = "a" * 150 + "_one.mp4", "a" * 150 + "_two.mp4"
    _touch(tmp_path, long_a, long_b, "b" * 200 + ".mp4", "b" * 200 + ".wav")
    ids = [s.video_id for s in scan_folder(tmp_path)]
    assert len(set(ids)) == 4 and all(len(i) == MAX_VIDEO_ID_LENGTH and check_video_id(i) for i in ids)
    assert ids == [s.video_id for s in scan_folder(tmp_path)]  # the same on every scan
    assert video_id_from_path(long_a) != video_id_from_path(long_b)
    assert video_id_from_path(long_a).startswith("a" * 80) and video_id_from_path("short.mp4") == "short"
    # a manifest row without video_id gets the same shortened id; with one, it must already fit
    assert read_manifest_of(tmp_path, f"path\n{long_a}\n")[0].video_id == video_id_from_path(long_a)


@pytest.mark.parametrize("name, expected", [
    ("Ünïcode clip.mp4", "n_code_clip"), ("-dash.mp4", "dash"), ("..mp4", "video"), ("a\nb.mp4", "a_b"),
    ("日本.mp4", "video"),
])
def test_ids_from_odd_file_names_are_folder_safe(name, expected):
    assert video_id_from_path(name) == check_video_id(expected)
