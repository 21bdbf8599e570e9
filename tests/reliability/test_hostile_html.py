"""Issue 17, security 2: a hostile value in any field that `mcr report` or `mcr view` shows stays text.

Every field gets markup that would run script (`<img onerror>`, quotes that end an attribute, `</script>`): the
run directory's name, the data's path, the preset, the checkpoint's epoch (its SHA-256 recomputed), metric names
and values, class names, the sample's id and words, the viewer link; the table's name, video ids and paths, segment
ids, transcripts, labels, probability columns, stream notes and every metadata field. The pages are parsed (no
event-handler attribute, no script or image but the page's own, each hostile text shown as text), and loaded in
headless chromium when there is one (no script of the payload runs)."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.pipeline.streams import frames, language, meta
from tests.workflows.synthetic import write_config
from tests.workflows.test_viewer import browser, write_video  # noqa: F401  (browser: the chromium fixture)
from workflows.checkpoint import load_model, save_weights
from workflows.cli import main as mcr

TEXT = "<img src=x onerror=window.__pwned=1>'\"</script><script>window.__pwned=2</script>&amp;"
NAME = "<img src=x onerror=window.__pwned=3>'\"&"  # for file and folder names: no slash
CLASSES = [f"{TEXT}happy", f"<svg onload=window.__pwned=4>sad'"]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _inert(page: Path, *, scripts: int, images: set[str]) -> str:
    """The page's text, once its markup is checked: only its own scripts and images, no handler, no javascript:."""
    parser = _Tags()
    parser.feed(page.read_text())
    for tag, attrs in parser.tags:
        assert not [a for a in attrs if a.startswith("on")], (page, tag, attrs)
        assert not any(str(v).strip().lower().startswith("javascript:") for v in attrs.values()), (page, tag, attrs)
    assert [t for t, _ in parser.tags].count("script") == scripts, page
    assert {a.get("src") for t, a in parser.tags if t == "img"} <= images, page
    assert not [t for t, _ in parser.tags if t in ("svg", "iframe", "object", "embed")], page
    return "".join(parser.text) + " ".join(str(v) for _, a in parser.tags for v in a.values())


def _hostile_store(root: Path):
    """Two videos whose words, segment ids and class labels are all markup."""
    from pipeline.store import FeatureStore

    rng = np.random.default_rng(6)
    store = FeatureStore(root)
    words = [(TEXT, 0.1, 0.4), ("<b>x</b>", 0.5, 0.9), ("c", 1.1, 1.4), ("d", 1.6, 1.9)]
    for vid in ("v1", "v2"):
        store.write_stream("language", vid, language(words, rng.normal(size=(4, 5)).astype(np.float32)),
                           meta("language", 5, None))
        store.write_stream("acoustic", vid, frames(0.05 + 0.1 * np.arange(20), rng.normal(size=(20, 3))
                                                   .astype(np.float32)), meta("acoustic", 3, 0.1))
        store.write_stream("visual", vid, frames(0.25 * np.arange(8), rng.normal(size=(8, 2)).astype(np.float32),
                                                 np.ones(8, bool)), meta("visual", 2, 0.25))
    store.write_segments(pd.DataFrame({
        "video_id": ["v1", "v1", "v2", "v2"], "segment_id": [f"{TEXT}{i}" for i in range(4)],
        "start": [0.0, 1.0, 0.0, 1.0], "end": [1.0, 2.0, 1.0, 2.0], "split": ["train", "train", "valid", "valid"],
        "label": CLASSES * 2}))
    return store


def _tamper(run: Path) -> None:
    """What someone else's run directory may hold: markup in the config, the metrics and the checkpoint's epoch."""
    best = run / "checkpoints" / "best.safetensors"
    model, cfg, meta_ = load_model(best)
    save_weights(model, best, model_config=cfg.to_dict(), meta={**meta_, "epoch": TEXT})  # SHA-256 recomputed
    config = json.loads((run / "config.json").read_text())
    config["train"]["preset"] = TEXT
    (run / "config.json").write_text(json.dumps(config))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["valid"][TEXT] = TEXT
    (run / "metrics.json").write_text(json.dumps(metrics))


@pytest.mark.slow
def test_report_shows_hostile_values_as_text(tmp_path, capsys, request):
    _hostile_store(tmp_path / f"store {NAME}")
    run = tmp_path / f"run {NAME}"
    assert mcr(["train", "--data", str(tmp_path / f"store {NAME}"), "--config",
                str(write_config(tmp_path, epochs=1)), "--out", str(run), "--no-progress"]) == 0
    _tamper(run)
    viewer = run / "report" / "javascript:window.__pwned=5"  # a relative link that would read as a URL scheme
    viewer.mkdir(parents=True)
    (viewer / "index.html").write_text("<!doctype html>")
    capsys.readouterr()
    assert mcr(["report", str(run), "--split", "valid", "--sample", "0", "--viewer", str(viewer)]) == 0, \
        capsys.readouterr().err
    page = run / "report" / "index.html"
    figures = {"curves.png", "confusion.png", "attention_layer0.png", "weights.png"}
    text = _inert(page, scripts=0, images=figures)
    for value in (NAME, TEXT, f"{TEXT}2", *CLASSES, f"epoch {TEXT} of", f"preset {TEXT}", "javascript%3A"):
        assert value in text, value  # each shown, as text
    _no_script_runs(request, page)


def _hostile_table(tmp_path: Path) -> Path:
    folder = tmp_path / NAME
    folder.mkdir()
    video = write_video(folder / f"{NAME}.webm", 2)
    n = 2
    frame = pd.DataFrame({"video_id": [TEXT, "v2"], "video_path": [str(video)] * n, "segment_id": [TEXT] * n,
                          "start": [0.0, 1.0], "end": [1.0, 2.0], "transcript": [TEXT] * n,
                          "predicted_class": CLASSES, f"p_{TEXT}": [0.5, 0.2], "streams": [TEXT, "l"]})
    metadata = {"run": TEXT, "task": "classification", "label_names": CLASSES, "scale": TEXT,
                "extractors": {TEXT: {"name": TEXT}}, "mcr_version": TEXT, "placeholder_labels": True}
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"mcr": json.dumps(metadata).encode()})
    path = tmp_path / f"{NAME}.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.slow
def test_viewer_shows_hostile_values_as_text(tmp_path, request):
    table = _hostile_table(tmp_path)
    out = tmp_path / "site"
    assert mcr(["view", str(table), "--out", str(out)]) == 0
    pages = sorted(out.rglob("index.html"))
    assert len(pages) == 3
    index_text = _inert(out / "index.html", scripts=0, images=set())
    assert TEXT in index_text and NAME in index_text and all(c in index_text for c in CLASSES)
    for page in (p for p in pages if p != out / "index.html"):
        text = _inert(page, scripts=2, images=set())  # the rows' JSON and the viewer's script
        assert TEXT in text and f"{NAME}.webm" in text and all(c in text for c in CLASSES)
    for page in pages:
        _no_script_runs(request, page)


def _no_script_runs(request, page: Path) -> None:
    """In headless chromium (when installed): the page loads and none of the payloads' scripts runs."""
    from tests.workflows.test_viewer import CHROMIUM

    if not CHROMIUM.is_file():
        return
    try:
        chromium = request.getfixturevalue("browser")
    except pytest.skip.Exception:
        return
    context = chromium.new_context()
    try:
        tab = context.new_page()
        tab.goto(page.as_uri())
        tab.wait_for_load_state("load")
        tab.wait_for_timeout(200)  # an <img onerror> fires once the image fails to load
        assert tab.evaluate("window.__pwned") is None, page
        for link in tab.locator("a").all():  # links stay links: no javascript: URL
            assert not (link.evaluate("a => a.protocol") or "").startswith("javascript"), page
    finally:
        context.close()
