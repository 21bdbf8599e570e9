"""A run remembers the extractors of the store it was trained on, and `mcr predict` extracts new videos with them
(a model trained on the whisper-encoder or eGeMAPS acoustic stream annotates with that stream, not librosa's)."""
from __future__ import annotations

import json

import pytest

from tests.extractors.media_files import cremad_clips
from tests.workflows.synthetic import write_config
from workflows.cli import main as mcr


@pytest.mark.slow
def test_predict_extracts_with_the_extractors_the_run_was_trained_on(tmp_path):
    import pandas as pd

    from pipeline.store import FeatureStore

    clips = cremad_clips()
    splits = {"ANG": "train", "DIS": "train", "FEA": "train", "HAP": "train", "NEU": "valid", "SAD": "test"}
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame([{"path": str(clips[e]), "video_id": e.lower(), "split": s, "label": e.lower()}
                  for e, s in splits.items()]).to_csv(manifest, index=False)
    store = tmp_path / "store"
    assert mcr(["extract", str(manifest), "--store", str(store), "--acoustic", "egemaps", "--workers", "1",
                "--no-progress"]) == 0
    run = tmp_path / "run"
    assert mcr(["train", "--data", str(store), "--preset", "iemocap", "--config",
                str(write_config(tmp_path, epochs=1)), "--out", str(run), "--no-progress"]) == 0
    recorded = json.loads((run / "config.json").read_text())["data"]["extractors"]
    assert recorded["acoustic"] == "egemaps" and recorded["language"] == "whisper-glove"

    out = tmp_path / "emotions.csv"
    assert mcr(["predict", str(clips["SAD"]), "--model", str(run), "--out", str(out), "--workers", "1",
                "--no-progress"]) == 0
    predicted = FeatureStore(f"{out}.store")
    assert predicted.stream_metadata("acoustic")["extractor"] == "egemaps"  # librosa's 43 features would not fit
    rows = pd.read_csv(out)
    assert (rows["status"] == "ok").all() and rows["predicted_class"].isin([e.lower() for e in splits]).all()
