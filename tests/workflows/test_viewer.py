"""`mcr view`: static pages per video, driven in a real headless browser (Debian's chromium through Playwright).

The browser tests skip, saying why, without /usr/bin/chromium (``apt-get install -y chromium``) or the
``playwright`` package; Playwright's own browser download is never used.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workflows.cli import main as mcr

CHROMIUM = Path(os.environ.get("MCR_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
EVIL = "</script><script>window.__pwned = 1</script><b>bold?</b> & \"quotes\""


def write_video(path: Path, seconds: int = 6, fps: int = 10, size=(160, 120)) -> Path:
    """A real WebM clip (VP9, else VP8): a moving bar on a changing background, no audio."""
    av = pytest.importorskip("av")
    codec = next((c for c in ("libvpx-vp9", "libvpx") if c in av.codecs_available), None)
    if codec is None:
        pytest.skip("PyAV has no libvpx encoder to write a WebM test video")
    w, h = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(seconds * fps):
            image = np.zeros((h, w, 3), np.uint8)
            image[..., 2] = (i * 4) % 256
            image[:, : (i * w) // (seconds * fps) + 1, 1] = 220
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


ROWS = [(0.0, 1.2, "hello there", "happy"), (1.3, 2.5, "this is fine", "neutral"), (2.6, 3.9, EVIL, "sad"),
        (4.0, 5.8, "goodbye", "angry")]
EMOTIONS = ["neutral", "happy", "sad", "angry"]


def write_iemocap_table(path: Path, video: Path, *, placeholder: bool = True) -> pd.DataFrame:
    """The predictions contract: iemocap columns, one video, schema metadata ``mcr``."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "video_id": "clip1", "video_path": str(video.resolve()),
        "segment_id": [f"clip1_{i}" for i in range(len(ROWS))], "start": [r[0] for r in ROWS],
        "end": [r[1] for r in ROWS], "transcript": [r[2] for r in ROWS], "asr_confidence": [0.9, 0.8, 0.7, 0.95],
        "face_id": 0, "face_share": [1.0, 0.9, 0.5, 0.0], "has_language": True, "has_acoustic": True,
        "has_visual": [True, True, True, False]})
    probs = rng.uniform(0.05, 0.5, (len(ROWS), len(EMOTIONS)))
    for i, (*_, emotion) in enumerate(ROWS):
        probs[i, EMOTIONS.index(emotion)] = 0.9
    for k, e in enumerate(EMOTIONS):
        frame[f"p_{e}"] = probs[:, k].astype(np.float32)
    frame["predicted_emotion"] = [r[3] for r in ROWS]
    meta = {"run": "runs/demo", "task": "iemocap", "label_names": EMOTIONS, "scale": None,
            "extractors": {"language": "whisper-base", "acoustic": "librosa", "visual": "mediapipe"},
            "mcr_version": "0.1.0", "placeholder_labels": placeholder}
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"mcr": json.dumps(meta).encode()})
    pq.write_table(table, path)
    return frame


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("requestfailed", lambda r: pg.errors.append(f"request failed: {r.url}"))
    yield pg
    context.close()


def _media_ready(page) -> dict:
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15000)
    return page.evaluate("(() => { const v = document.getElementById('player');"
                         " return {ready: v.readyState, duration: v.duration, error: v.error && v.error.code,"
                         " cues: v.textTracks[0] && v.textTracks[0].cues ? v.textTracks[0].cues.length : -1}; })()")


def test_viewer_in_a_real_browser(tmp_path, page, capsys):
    video = write_video(tmp_path / "clip1.webm")
    table = tmp_path / "predictions.parquet"
    frame = write_iemocap_table(table, video)
    built = tmp_path / "built"
    assert mcr(["view", str(table), "--out", str(built)]) == 0
    assert capsys.readouterr().out.strip() == str(built / "index.html")
    assert (built / "clip1" / "video.webm").is_file() and not (built / "clip1" / "video.webm").is_symlink()
    out = tmp_path / "moved" / "viewer"  # the folder works wherever it goes: every reference is relative
    shutil.move(str(built), str(out))

    page.goto((out / "index.html").as_uri())
    links = page.locator("a.video-link")
    assert links.count() == 1 and page.locator("#placeholder-warning").is_visible()
    assert "4" in page.locator("table.videos td.num").first.inner_text()
    links.first.click()
    page.wait_for_load_state("load")
    assert page.url == (out / "clip1" / "index.html").as_uri()

    media = _media_ready(page)
    assert media["ready"] >= 1 and math.isfinite(media["duration"]) and abs(media["duration"] - 6) < 0.5
    assert media["error"] is None and media["cues"] == len(frame)
    assert page.locator("#placeholder-warning").is_visible()
    marks = page.locator(".timeline .mark")
    assert marks.count() == len(frame)
    assert page.evaluate("window.__pwned") is None  # the transcript is text, not markup
    assert EVIL in page.locator("#utt-2 .text").inner_text()
    rows = json.loads(page.locator("#rows-data").text_content())
    assert [r["transcript"] for r in rows] == list(frame["transcript"])

    target = frame.iloc[2]
    assert float(marks.nth(2).get_attribute("data-start")) == target["start"]
    # where the seek went (read at `seeking`) and where the video is once it lands (`seeked`; it plays on from there)
    page.evaluate("() => { const v = document.getElementById('player'); let at = null;"  # a function: evaluate
                  " v.addEventListener('seeking', () => { at = v.currentTime; }, {once: true});"  # awaits promises
                  " window.__seeked = new Promise(r => { setTimeout(() => r([at, null]), 10000);"
                  " v.addEventListener('seeked', () => { r([at, v.currentTime]); v.pause(); }, {once: true}); }); }")
    marks.nth(2).click()
    seeking_at, seeked_at = page.evaluate("window.__seeked")
    assert seeked_at is not None, "no `seeked` event within 10 s of the click"
    assert abs(seeking_at - target["start"]) < 0.05 and 0 <= seeked_at - target["start"] < 0.5, (seeking_at, seeked_at)
    assert "current" in page.locator("#utt-2").get_attribute("class")
    assert page.locator("li.utt.current").count() == 1
    assert "current" in marks.nth(2).get_attribute("class")
    assert page.errors == [], page.errors


def test_old_regression_csv_with_videos_folder(tmp_path, page):
    videos = tmp_path / "footage"
    videos.mkdir()
    write_video(videos / "talk.webm")
    table = tmp_path / "old.csv"
    pd.DataFrame({"video_id": "talk", "segment_id": ["a", "b", "c"], "start": [0.0, 2.0, 4.0],
                  "end": [2.0, 4.0, 6.0], "transcript": ["bad day", "", "great <news>"],
                  "sentiment": [-2.1, 0.0, 2.4], "sentiment_class": ["negative", "neutral", "positive"],
                  "sentiment_7": [-2, 0, 2]}).to_csv(table, index=False)
    out = tmp_path / "viewer"
    assert mcr(["view", str(table), "--out", str(out), "--videos", str(videos), "--link"]) == 0
    assert (out / "talk" / "video.webm").is_symlink()
    text = (out / "talk" / "index.html").read_text()
    assert "great &lt;news&gt;" in text and "placeholder-warning" not in text
    vtt = (out / "talk" / "subtitles.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "[positive +2.40] great &lt;news&gt;" in vtt  # cue text is markup

    page.goto((out / "talk" / "index.html").as_uri())
    assert _media_ready(page)["ready"] >= 1
    cue = page.evaluate("document.getElementById('player').textTracks[0].cues[2].getCueAsHTML().textContent")
    assert cue == "[positive +2.40] great <news>"
    marks = page.locator(".timeline .mark")
    assert marks.count() == 3
    colours = [m.evaluate("e => getComputedStyle(e).backgroundColor") for m in marks.all()]
    assert len(set(colours)) == 3  # a diverging scale: negative, neutral and positive differ
    marks.nth(1).click()
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 2.0) < 0.3")
    assert "current" in page.locator("#utt-1").get_attribute("class")
    assert page.errors == [], page.errors


def test_missing_video_still_gives_a_page(tmp_path, capsys):
    table = tmp_path / "p.parquet"
    pd.DataFrame({"video_id": ["x", "x", "y"], "segment_id": ["1", "2", "3"], "start": [0.0, 1.0, 0.0],
                  "end": [1.0, 2.0, 3.0], "transcript": ["a", "b", "c"], "p_0": [0.2, 0.7, 0.5],
                  "p_1": [0.8, 0.3, 0.5], "predicted_class": ["1", "0", "0"]}).to_parquet(table)
    out = tmp_path / "viewer"
    assert mcr(["view", str(table), "--out", str(out)]) == 0
    index = (out / "index.html").read_text()
    assert index.count("class='video-link'") == 2 and "not found" in index
    page = (out / "x" / "index.html").read_text()
    assert "Video not found" in page and page.count("class='mark'") == 2 and "id='player'" not in page


@pytest.mark.parametrize("name, content, expected", [
    ("p.txt", "x", "give the .parquet or .csv"),
    ("p.csv", "video_id,begin\nv,0\n", "no start, end column"),
    ("absent.parquet", None, "no such predictions table"),
])
def test_bad_tables_are_one_line_errors(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    assert mcr(["view", str(path), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mcr view: error:") and expected in err[0], err


def test_csv_metadata_beside_the_table_and_ids_kept_as_text(tmp_path):
    table = tmp_path / "p.csv"
    pd.DataFrame({"video_id": ["007", "007"], "segment_id": ["1", "2"], "start": [0.0, 1.0], "end": [1.0, 2.0],
                  "transcript": ["a", "b"], "streams": ["language,acoustic,visual", "language,acoustic"],
                  "predicted_sentiment": [1.2, -0.4], "predicted_sentiment_sd": [0.2, 0.9],
                  "predicted_polarity": ["positive", "neutral"]}).to_csv(table, index=False)
    Path(f"{table}.mcr.json").write_text(json.dumps({"task": "regression", "placeholder_labels": True,
                                                    "scale": [-3.0, 3.0], "run": "runs/x"}))
    out = tmp_path / "viewer"
    assert mcr(["view", str(table), "--out", str(out)]) == 0
    page = (out / "007" / "index.html").read_text()
    assert "id='placeholder-warning'" in page and "id='placeholder-warning'" in (out / "index.html").read_text()
    assert "no visual" in page and "positive +1.20 ± 0.20" in page and page.count("class='mark'") == 2
