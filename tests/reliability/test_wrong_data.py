"""Issue 17, items 9 and 11: data that was silently wrong is refused or reported, naming the file and the row.

Manifests: a NaN or infinite label, an unclosed quote, a column named twice and a row with more cells than columns
are refused (before: left out of training without a word, trained on, read as a path with a newline, the last
value kept, the cells dropped). A folder named like a video is listed with the files passed over. The extraction
summary no longer reads as if chunks failed. ``mcr predict``: a manifest segment past the end of its video is left
out with a warning (before: a prediction from no input), a row with a path alone is the whole video (before: an
internal error writing its subtitles).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.reliability.test_absurd_values import refused
from workflows.cli import main as mcr
from workflows.commands.extract import format_summary
from workflows.extract import ExtractSummary

MANIFESTS = [
    ("nan label", "path,label\na.mp4,1.0\nb.mp4,nan\n", ":3", "'label'"),
    ("inf label", "path,label\na.mp4,inf\n", ":2", "'label'"),
    ("NaN emotion", "path,emotion\na.mp4,NaN\n", ":2", "'emotion'"),
    ("unclosed quote", 'path,label\n"a.mp4,1\nb.mp4,2\n', "quote", "CSV"),
    ("quote closed later", 'path,label\n"a.mp4,1\nb.mp4",2\n', ":2", "control character"),
    ("column twice", "path,label,label\na.mp4,1,2\n", "'label'", "twice"),
    ("path twice", "path,path\na.mp4,b.mp4\n", "'path'", "twice"),
    ("extra cells", "path,label\na.mp4,1\nb.mp4,2,3,4\n", ":3", "4 cells for 2 columns"),
]


@pytest.mark.parametrize("text,row,named", [m[1:] for m in MANIFESTS], ids=[m[0] for m in MANIFESTS])
def test_a_wrong_manifest_is_refused_naming_file_and_row(tmp_path, capsys, text, row, named):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text)
    refused(capsys, ["extract", manifest, "--store", tmp_path / "store"], str(manifest), row, named)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("text,row,named", [m[1:] for m in MANIFESTS if "label" in m[0] or "cells" in m[0]],
                         ids=[m[0] for m in MANIFESTS if "label" in m[0] or "cells" in m[0]])
def test_mcr_label_refuses_them_too(tmp_path, capsys, text, row, named):
    from tests.pipeline.test_sources import _small_store

    store = _small_store(tmp_path / "store")
    manifest = tmp_path / "labels.csv"
    manifest.write_text(text.replace("path", "video_id").replace("a.mp4", "v1").replace("b.mp4", "v2"))
    before = store.segments()
    refused(capsys, ["label", tmp_path / "store", manifest], str(manifest), row, named)
    pd.testing.assert_frame_equal(store.segments(), before)


def test_a_folder_named_like_a_video_is_reported(tmp_path, capsys):
    (tmp_path / "videos" / "dir_named.mp4").mkdir(parents=True)
    capsys.readouterr()
    assert mcr(["extract", str(tmp_path / "videos"), "--store", str(tmp_path / "store"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "dir_named.mp4: a folder, though named like a media file" in err and "Traceback" not in err


def test_the_summary_does_not_read_as_if_chunks_failed():
    text = format_summary(ExtractSummary(done=2, failed=4, chunks=4))
    videos = next(line for line in text.splitlines() if line.startswith("videos"))
    assert videos.endswith("4 failed") and "chunk" not in videos
    assert "long videos : cut into 4 chunks, each its own task" in text
    assert "chunk" not in format_summary(ExtractSummary(done=2))


# ---------------------------------------------------------------------------------------- mcr predict segments
@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """A CREMA-D clip (about 2.3 s) extracted into a store, and a tiny run of the store's feature sizes."""
    from pipeline.store import FeatureStore
    from pipeline.store_source import segment_records
    from tests.extractors.media_files import cremad_clips
    from tests.workflows.synthetic import write_config, write_random_pickle

    root = tmp_path_factory.mktemp("clip")
    (root / "videos").mkdir()
    (root / "videos" / "clip.flv").symlink_to(cremad_clips()["ANG"])
    store = root / "store"
    assert mcr(["extract", str(root / "videos"), "--store", str(store), "--workers", "1", "--no-progress"]) == 0
    fs = FeatureStore(str(store))
    record = segment_records(fs, fs.segments(), max_len=None)[0]
    dims = tuple(record[m].shape[1] for m in ("language", "visual", "acoustic"))
    assert mcr(["train", "--data", str(write_random_pickle(root, dims)), "--config",
                str(write_config(root, epochs=1)), "--out", str(root / "run"), "--no-progress"]) == 0
    return root, store


@pytest.mark.slow
def test_a_segment_past_the_end_is_reported_not_predicted(clip_run, tmp_path, capsys):
    root, store = clip_run
    manifest = tmp_path / "segments.csv"
    clip = root / "videos" / "clip.flv"
    manifest.write_text(f"path,video_id,segment_id,start,end\n{clip},clip,inside,0.5,1.5\n{clip},clip,late,50,60\n"
                        f"{clip},clip,overlong,1.0,30\n")
    out = tmp_path / "p.csv"
    capsys.readouterr()
    assert mcr(["predict", str(manifest), "--model", str(root / "run"), "--out", str(out), "--store", str(store),
                "--workers", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {manifest}: segment 'late' (50-60 s) starts after the end of {clip}" in err
    table = pd.read_csv(out)
    assert list(table["segment_id"]) == ["inside", "overlong"]
    assert table["end"].iloc[1] < 3.0  # ended at the video's end


@pytest.mark.slow
def test_a_manifest_of_paths_alone_gets_subtitles(clip_run, tmp_path, capsys):
    root, store = clip_run
    manifest = tmp_path / "paths.csv"
    manifest.write_text(f"path\n{root / 'videos' / 'clip.flv'}\n")
    out, vtt, js = tmp_path / "p.parquet", tmp_path / "vtt", tmp_path / "json"
    assert mcr(["predict", str(manifest), "--model", str(root / "run"), "--out", str(out), "--store", str(store),
                "--workers", "1", "--vtt", str(vtt), "--json", str(js), "--no-progress"]) == 0
    table = pd.read_parquet(out)
    assert len(table) == 1 and table["start"].iloc[0] == 0 and 2.0 < table["end"].iloc[0] < 3.0
    (subtitles,), (document,) = vtt.glob("*.vtt"), js.glob("*.json")
    assert "-->" in subtitles.read_text()
    assert json.loads(document.read_text())["segments"][0]["end"] == pytest.approx(table["end"].iloc[0])
