"""Nothing hidden (issue 18 item 4, issue 19 item 6): arguments checked before any extraction, a failed file is a row
of the predictions table and a line of the viewer's index, one warning line per file at most (a batch counts them
in its summary), and the printed table says how many rows it leaves out."""
from __future__ import annotations

import time
import warnings

import pandas as pd

from tests.extractors.media_files import write_media
from tests.workflows.synthetic import train_tiny
from workflows.cli import main as mcr


def _one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_predict_checks_its_arguments_before_any_extraction(tmp_path, capsys):
    video = write_media(tmp_path / "clip.mp4", seconds=1.0)
    started = time.perf_counter()
    assert mcr(["predict", str(video), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "x.txt")]) == 2
    assert "x.txt" in (line := _one_line(capsys)) and ".parquet or .csv" in line
    assert mcr(["predict", str(tmp_path / "missing.mp4"), "--model", str(tmp_path / "run"),
                "--out", str(tmp_path / "x.parquet")]) == 2
    assert "missing.mp4" in (line := _one_line(capsys)) and "no such video or audio file" in line
    assert mcr(["predict", str(video), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "x.parquet")]) == 2
    assert str(tmp_path / "run") in _one_line(capsys)
    assert time.perf_counter() - started < 60  # no cluster started, nothing extracted (today: after extraction)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no x.txt.store left behind


def test_a_file_that_fails_is_a_row_of_the_table_and_a_line_of_the_viewer(tmp_path, capsys):
    _, run = train_tiny(tmp_path)
    good = write_media(tmp_path / "good.mp4", seconds=2.0)
    broken = tmp_path / "videos" / "broken.mp4"
    broken.parent.mkdir()
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 3])  # a truncated recording
    out = tmp_path / "predictions.parquet"
    capsys.readouterr()
    assert mcr(["predict", str(broken.parent), "--model", str(run), "--out", str(out), "--workers", "1",
                "--no-progress"]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    table = pd.read_parquet(out)  # today: no table at all
    assert len(table) == 1 and table.loc[0, "video_id"] == "broken" and table.loc[0, "status"] == "failed"
    assert table.loc[0, "reason"].startswith("[decode]") and "truncated" in table.loc[0, "reason"]
    assert not any(c.startswith(("predicted_", "p_")) and table[c].notna().any() for c in table.columns)

    assert mcr(["view", str(out), "--out", str(tmp_path / "viewer")]) == 0
    index = (tmp_path / "viewer" / "index.html").read_text()
    assert "1 file failed" in index and "<b>broken</b>: [decode]" in index


def test_the_viewer_lists_failed_files_beside_the_videos(tmp_path):
    from workflows.predict import with_failures

    rows = pd.DataFrame({"video_id": ["a", "a"], "video_path": ["a.mp4", "a.mp4"], "segment_id": ["a_0", "a_1"],
                         "start": [0.0, 1.0], "end": [1.0, 2.0], "transcript": ["hi", "there"],
                         "p_happy": [0.7, 0.4], "p_sad": [0.3, 0.6], "predicted_class": ["happy", "sad"]})
    table = with_failures(rows, [{"video_id": "b", "path": "/x/b.mp4", "stage": "decode",
                                  "message": "truncated:\n the container declares 3.0 s"}])
    assert list(table["status"]) == ["ok", "ok", "failed"] and list(table["reason"])[:2] == ["", ""]
    assert table.loc[2, "reason"] == "[decode] truncated: the container declares 3.0 s"
    assert pd.isna(table.loc[2, "start"]) and pd.isna(table.loc[2, "p_happy"])
    for name in ("t.csv", "t.parquet"):
        (table.to_csv if name.endswith(".csv") else table.to_parquet)(tmp_path / name, index=False)
        assert mcr(["view", str(tmp_path / name), "--out", str(tmp_path / f"v-{name}")]) == 0
        index = (tmp_path / f"v-{name}" / "index.html").read_text()
        assert "1 videos, 2 utterances" in index and "<b>b</b>: [decode] truncated" in index
        assert (tmp_path / f"v-{name}" / "a" / "index.html").is_file() and not (tmp_path / f"v-{name}" / "b").exists()


def test_the_printed_table_says_how_many_rows_it_leaves_out():
    from workflows.commands.predict import format_rows

    frame = pd.DataFrame({"video_id": "v", "start": range(44), "end": range(1, 45), "transcript": "w"})
    text = format_rows(frame)
    assert text.splitlines()[0] == "first 20 of 44 rows:" and len(text.splitlines()) == 22
    assert "first" not in format_rows(frame.head(5))


def test_a_warning_is_one_line_without_a_source_echo(monkeypatch, capsys):
    import workflows.commands.view as view

    def run(args):
        warnings.warn("clip.wav: no video track: the visual stream will be empty", UserWarning)
        return 0

    monkeypatch.setattr(view, "run", run)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert mcr(["view", "x.parquet", "--out", "v"]) == 0
    assert capsys.readouterr().err == "warning: clip.wav: no video track: the visual stream will be empty\n"


def test_a_batch_of_audio_only_files_warns_once_per_file_and_counts_them(tmp_path, capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    for i in range(5):
        write_media(folder / f"a{i}.m4a", video=False, seconds=1.0)
    capsys.readouterr()
    assert mcr(["extract", str(folder), "--store", str(tmp_path / "store"), "--language", "none", "--acoustic",
                "librosa", "--visual", "none", "--workers", "1", "--no-progress"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    warned = [line for line in lines if line.startswith("warning: ")]
    assert 1 <= len(warned) <= 3 and all(sum(f"a{i}.m4a" in w for w in warned) <= 1 for i in range(5))
    assert not any("warnings.warn" in line or "MissingStreamWarning" in line for line in lines)
    assert "warnings    : 5 files: no video track" in captured.out  # today: nothing in the summary


def test_a_failed_row_keeps_the_other_rows_integers_and_booleans():
    from workflows.predict import with_failures

    rows = pd.DataFrame({"video_id": ["a"], "video_path": ["a.mp4"], "n_words": [4], "has_visual": [True]})
    table = with_failures(rows, [{"video_id": "b", "path": "b.mp4", "stage": "decode", "message": "bad"}])
    assert table.loc[0, "n_words"] == 4 and str(table["n_words"].dtype) == "Int64" and pd.isna(table.loc[1, "n_words"])
    assert bool(table.loc[0, "has_visual"]) and pd.isna(table.loc[1, "has_visual"])
    assert table.to_csv(index=False).splitlines()[1].split(",")[4] == "4"
