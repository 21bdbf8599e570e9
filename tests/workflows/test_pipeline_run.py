"""`mcr run` end to end on real clips, `mcr predict` on them and on a 60-s video made by joining them."""
from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from tests.extractors.media_files import cremad_clips
from tests.workflows.joined_video import join_clips
from tests.workflows.synthetic import TINY_MODEL
from workflows.cli import main
from workflows.cluster import open_client
from workflows.pipeline import run_pipeline
from workflows.pipeline_config import load_config

pytestmark = pytest.mark.slow  # real models on real clips, a 60-s video


def _config(root, clips, epochs=2):
    manifest = root / "manifest.csv"
    splits = {"NEU": "valid", "SAD": "test"}
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "video_id", "split", "label"])
        for code, path in sorted(clips.items()):
            w.writerow([path, f"cremad_{code}", splits.get(code, "train"), code])  # real emotion labels
    model = json.dumps(TINY_MODEL).replace('"', "").replace(":", " =").replace("{", "{ ").replace("}", " }")
    (root / "pipeline.toml").write_text(f"""
workdir = "work"
[extract]
input = "manifest.csv"
store = "store"
workers = 2
[train]
preset = "mosi"
out = "run"
epochs = {epochs}
batch_size = 4
cpu_threads = 1
model = {model}
[evaluate]
split = "test"
[predict]
input = "{clips['ANG'].parent}"
out = "predictions.csv"
vtt = "subtitles"
[report]
""")
    return root / "pipeline.toml"


@pytest.fixture(scope="module")
def client():
    with open_client(workers=2, announce=False) as c:
        yield c


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, client):
    clips = cremad_clips()
    root = tmp_path_factory.mktemp("pipeline")
    config = _config(root, clips)
    first = run_pipeline(config, client=client, log=lambda _: None)
    return root, config, first, clips


def test_first_run_runs_every_stage_and_writes_every_output(pipeline_run):
    root, _, first, _ = pipeline_run
    assert first == {s: "ran" for s in ("extract", "dataset", "train", "evaluate", "predict", "report")}
    predictions = pd.read_csv(root / "predictions.csv")
    assert len(predictions) == 6, "one row per clip (each clip is one utterance)"
    assert predictions["transcript"].str.lower().str.contains("forget").all()
    assert {"video_id", "start", "end", "predicted_class", "streams", "face_share"} <= set(predictions.columns)
    assert "label" not in predictions.columns
    assert set(predictions["predicted_class"]) <= {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"}
    probs = predictions.filter(regex="^p_")
    assert probs.shape[1] == 6 and (probs.sum(axis=1) - 1).abs().max() < 1e-4
    vtts = sorted((root / "subtitles").glob("*.vtt"))
    assert len(vtts) == 6 and vtts[0].read_text().startswith("WEBVTT")
    assert (root / "run" / "report" / "index.html").exists()
    assert json.loads((root / "run" / "eval-test.json").read_text())["n"] == 1


def test_rerun_skips_unchanged_stages_and_a_change_reruns_only_what_follows(pipeline_run):
    root, config, _, clips = pipeline_run
    again = run_pipeline(config, log=lambda _: None)  # no client passed: the one this process has open
    assert again == {"extract": "ran", "dataset": "skipped", "train": "skipped", "evaluate": "skipped",
                     "predict": "skipped", "report": "skipped"}
    changed = load_config(_config(root, clips, epochs=3))
    result = run_pipeline(changed, log=lambda _: None)
    assert result["dataset"] == "skipped"
    assert result["train"] == result["evaluate"] == result["predict"] == result["report"] == "ran"
    history = json.loads((root / "run" / "history.json").read_text())
    assert len(history) == 3


def test_predict_on_a_long_video_gives_one_row_per_utterance(pipeline_run, tmp_path):
    root, _, _, clips = pipeline_run
    video = tmp_path / "joined.mp4"
    duration = join_clips([clips[c] for c in ("HAP", "SAD", "ANG")], video, seconds=40.0)
    out = tmp_path / "joined.parquet"
    code = main(["predict", str(video), "--model", str(root / "run"), "--out", str(out),
                 "--store", str(root / "store"), "--workers", "1", "--vtt", str(tmp_path / "vtt")])
    assert code == 0
    rows = pd.read_parquet(out)
    assert duration >= 40.0
    assert len(rows) >= 6, f"expected many utterances in {duration:.0f} s, got {len(rows)}"
    assert (rows["start"].diff().dropna() > 0).all(), "segments in time order"
    assert (rows["end"] > rows["start"]).all() and rows["end"].max() <= duration + 0.5
    assert rows["transcript"].str.lower().str.contains("forget").mean() >= 0.8
    cues = (tmp_path / "vtt" / "joined.vtt").read_text().count(" --> ")
    assert cues == len(rows)


def test_the_training_stores_digest_follows_the_models_streams_not_the_voice_stream(tmp_path):
    """`mcr run` retrains when the store's training streams change; the voice stream (annotation only) is not one."""
    from pipeline.store import FeatureStore
    from workflows.pipeline import store_digest

    store = FeatureStore(tmp_path / "store")
    row = {"video_id": "v", "sha256": "a" * 64, "status": "done", "acoustic_config_hash": "1" * 16,
           "voice_config_hash": "2" * 16}
    store.upsert_videos([row])
    before = store_digest(store.url)
    store.upsert_videos([{**row, "voice_config_hash": "3" * 16}])
    assert store_digest(store.url) == before
    store.upsert_videos([{**row, "acoustic_config_hash": "4" * 16}])
    assert store_digest(store.url) != before
