"""Subtitles are written by webvtt-py, atomically, and read back with the cues' times and texts."""
from __future__ import annotations

import pytest
import webvtt

from pipeline.subtitles import to_srt, to_webvtt, write_srt, write_webvtt

CUES = [(61.25, 62.5, "happy: hello"), (0.0, 1.0, "neutral: hi"), (3725.5, 3726.0, "sad: a --> b\n\nc")]


def _read(captions) -> list[tuple[int, int, str]]:
    return [(c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), c.text) for c in captions]


EXPECTED = [(0, 1000, "neutral: hi"), (61250, 62500, "happy: hello"), (3725500, 3726000, "sad: a -> b\nc")]


def test_webvtt_reads_back_in_time_order(tmp_path):
    path = write_webvtt(tmp_path / "sub" / "v.vtt", CUES)
    assert path == tmp_path / "sub" / "v.vtt"
    assert path.read_text().startswith("WEBVTT")
    assert _read(webvtt.read(str(path))) == EXPECTED
    assert [p.name for p in path.parent.iterdir()] == ["v.vtt"]  # no temporary left behind


def test_srt_reads_back(tmp_path):
    path = write_srt(tmp_path / "v.srt", CUES)
    text = path.read_text()
    assert "00:01:01,250 --> 00:01:02,500" in text and text.endswith("\n")
    assert _read(webvtt.from_srt(str(path))) == EXPECTED


def test_empty_text_and_no_cues():
    assert _read(webvtt.from_string(to_webvtt([(1.0, 2.0, "  ")]))) == [(1000, 2000, "…")]
    assert to_webvtt([]).startswith("WEBVTT") and to_srt([]) == ""


@pytest.mark.parametrize("cue", [(2.0, 1.0, "backwards"), (float("nan"), 1.0, "nan")])
def test_bad_cues_raise_value_error(tmp_path, cue):
    with pytest.raises(ValueError):
        write_webvtt(tmp_path / "bad.vtt", [cue])
    with pytest.raises(ValueError):
        write_srt(tmp_path / "bad.srt", [cue])
    assert not list(tmp_path.iterdir())


def test_notes_head_every_format(tmp_path):
    import json

    from pipeline.subtitles import write_json

    note = "WARNING: placeholder labels --> predictions mean nothing"
    vtt = write_webvtt(tmp_path / "v.vtt", CUES, [note, "model: run"]).read_text()
    assert vtt.startswith("WEBVTT\n\nNOTE WARNING: placeholder labels -> predictions mean nothing\n\nNOTE model: run")
    assert _read(webvtt.read(str(tmp_path / "v.vtt"))) == EXPECTED  # notes are not cues
    path = write_srt(tmp_path / "v.srt", CUES, [note])
    srt = webvtt.from_srt(str(path))
    assert srt.captions[0].start_time.in_milliseconds() == 0 and "placeholder" in srt.captions[0].text
    assert _read(srt.captions[1:]) == EXPECTED
    assert [b.split("\n")[0] for b in path.read_text().strip().split("\n\n")] == ["1", "2", "3", "4"]
    assert write_srt(tmp_path / "plain.srt", CUES, []).read_text() == to_srt(CUES)

    doc = json.loads(write_json(tmp_path / "v.json", [{"start": 2.0, "end": 3.0, "text": "b", "p": float("nan")},
                                                       {"start": 0.0, "end": 1.0, "text": "a", "p": 0.5}],
                                notes=[note], mcr={"task": "regression"}).read_text())
    assert doc["text"] == "a b" and doc["notes"] == [note] and doc["mcr"] == {"task": "regression"}
    assert [(s["id"], s["start"], s["end"], s["text"], s["p"]) for s in doc["segments"]] == \
        [(0, 0.0, 1.0, "a", 0.5), (1, 2.0, 3.0, "b", None)]
    with pytest.raises(ValueError):
        write_json(tmp_path / "bad.json", [{"start": 2.0, "end": 1.0, "text": "x"}])
