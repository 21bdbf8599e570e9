"""A run remembers the extractors of the store it was trained on, each with its config, and `mcr predict` extracts
new videos with exactly those (a model trained on the whisper-encoder or eGeMAPS acoustic stream annotates with that
stream, not librosa's; one trained on openai-whisper's words, with openai-whisper's)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from extractors import create
from pipeline.store import FeatureStore
from tests.extractors.media_files import cremad_clips
from tests.workflows.synthetic import write_config
from workflows.annotate.settings import PREDICT_MAX_FACES, check_reused_streams, visual_extractor
from workflows.cli import main as mcr
from workflows.extract import DEFAULT_CHUNKING, ChunkConfig, ExtractorSpec
from workflows.runs import TrainedRun, trained_extractors

# the language and acoustic streams of /work/data/ravdess-store-whisper-encoder, extracted before the whisper
# extractors had an engine (openai-whisper's then) and a fallback option (5 then)
OLD_LANGUAGE = {"allow_download": False, "batch": 8, "encoder_precision": "auto", "glove": None, "language": "en",
                "model": "base", "short_content_seconds": 4.0, "short_window_seconds": 8.0, "threads": None,
                "vad": True, "vad_min_silence": 0.5}
OLD_ENCODER = {"allow_download": False, "batch": 8, "encoder_precision": "auto", "hop": 0.04, "model": "base",
               "short_content_seconds": 4.0, "short_window_seconds": 8.0, "threads": None, "vad": True,
               "vad_min_silence": 0.5}


def _run(tmp_path: Path, extractors: dict) -> TrainedRun:
    """A run record (no model: rebuilding its extractors reads its data alone)."""
    return TrainedRun(model=None, config=None, run_dir=tmp_path / "run", normalizer=None, train={},
                      data={"extractors": extractors}, best_epoch=None, best_val_loss=None)


def test_a_recorded_config_is_rebuilt_and_options_added_since_take_their_old_value(tmp_path):
    spec = {"name": "whisper-encoder", "config": {**OLD_ENCODER, "hop": 0.08}, "config_hash": "8060ba4d08e5342e"}
    built = trained_extractors(_run(tmp_path, {"language": {"name": "whisper-glove", "config": OLD_LANGUAGE},
                                               "acoustic": spec}), log=pytest.fail)
    assert built["acoustic"].config.hop == 0.08 and built["acoustic"].config.engine == "openai-whisper"
    assert built["language"].config.engine == "openai-whisper" and built["language"].config.fallback == 5
    current = create("whisper-encoder", hop=0.08)  # a config recorded today comes back with the same hash
    again = trained_extractors(_run(tmp_path, {"acoustic": {"name": current.name, "config": current.config_record()}}),
                               log=pytest.fail)["acoustic"]
    assert again.config_hash() == current.config_hash() and again.config.engine == "ctranslate2"


def test_a_run_that_recorded_names_only_gets_the_old_configs_with_one_warning(tmp_path):
    lines = []
    built = trained_extractors(_run(tmp_path, {"language": "whisper-glove", "acoustic": "whisper-encoder",
                                               "visual": "mediapipe"}), log=lines.append)
    assert built["language"].config.engine == built["acoustic"].config.engine == "openai-whisper"
    assert built["language"].config.fallback == 5 and built["visual"].config == create("mediapipe").config
    assert built["language"].config.retry_window_seconds is None  # a failed short window fell back in itself then
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "engine=openai-whisper" in lines[0]


@pytest.mark.parametrize("config, key", [({**OLD_LANGUAGE, "pack_seconds": 10.0}, "pack_seconds"),
                                         ({k: v for k, v in OLD_LANGUAGE.items() if k != "vad"}, "vad")])
def test_a_config_this_version_cannot_rebuild_is_refused_in_one_line(tmp_path, config, key):
    with pytest.raises(ValueError) as error:
        trained_extractors(_run(tmp_path, {"language": {"name": "whisper-glove", "config": config}}), log=print)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "run") in message and repr(key) in message


def test_a_store_extracted_with_another_config_is_refused_in_one_line(tmp_path):
    def store_with(extractor, chunking: ChunkConfig) -> FeatureStore:
        spec = ExtractorSpec.of(extractor, chunking)  # the metadata extraction writes, less the model's identity
        meta = {"extractor": extractor.name, "modality": extractor.modality, "config_hash": spec.config_hash,
                "config": json.dumps(extractor.config_record()), "chunking": chunking.to_json()}
        store = FeatureStore(tmp_path / f"store-{len(list(tmp_path.iterdir()))}")
        store.write_stream(extractor.modality, "v", pa.table({"start": pa.array(np.zeros(1))}), meta)
        return store

    made = create("whisper-glove")  # today's default: CTranslate2
    check_reused_streams(store_with(made, DEFAULT_CHUNKING), ["v", "w"], [made], "RUN")  # the same: used as it is
    wanted = create("whisper-glove", engine="openai-whisper", fallback=5)
    store = store_with(made, DEFAULT_CHUNKING)
    with pytest.raises(ValueError) as error:
        check_reused_streams(store, ["v", "w"], [wanted], "RUN")
    message = str(error.value)
    assert "\n" not in message and str(store.root) in message and "language stream of 'v'" in message
    assert "engine=ctranslate2 fallback=1" in message and "engine=openai-whisper fallback=5" in message
    assert "RUN" in message and "--store" in message
    with pytest.raises(ValueError, match="chunking.seconds=60.0, .* chunking.seconds=30.0"):  # cut otherwise
        check_reused_streams(store_with(made, ChunkConfig(seconds=60.0)), ["v"], [made], "RUN")


def test_the_visual_stream_keeps_the_runs_options_and_looks_for_several_faces(tmp_path):
    options = create("mediapipe", min_detection_confidence=0.4).config_record()  # max_faces 1, as trained
    new = visual_extractor(FeatureStore(tmp_path / "new"), ["v"], options=options)
    assert new.config.min_detection_confidence == 0.4 and new.config.max_faces == PREDICT_MAX_FACES
    store = FeatureStore(tmp_path / "store")  # a store extracted with the default options
    made = create("mediapipe")
    store.write_stream("visual", "v", pa.table({"time": pa.array([0.0])}), {**made.metadata(), "models": "{}"})
    with pytest.raises(ValueError) as error:
        visual_extractor(store, ["v"], options=options)
    assert "\n" not in str(error.value) and "not min_detection_confidence=0.4" in str(error.value)
    assert visual_extractor(store, ["v"], options=made.config_record()).config_hash() == made.config_hash()


@pytest.mark.slow
def test_predict_extracts_with_the_extractors_and_configs_the_run_was_trained_on(tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    clips = cremad_clips()
    splits = {"ANG": "train", "DIS": "train", "FEA": "train", "HAP": "train", "NEU": "valid", "SAD": "test"}
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame([{"path": str(clips[e]), "video_id": e.lower(), "split": s, "label": e.lower()}
                  for e, s in splits.items()]).to_csv(manifest, index=False)
    store = tmp_path / "store"
    assert mcr(["extract", str(manifest), "--store", str(store), "--acoustic", "egemaps", "--workers", "1",
                "--set", "language.fallback=0", "--set", "visual.min_detection_confidence=0.4",
                "--no-progress"]) == 0
    run = tmp_path / "run"
    assert mcr(["train", "--data", str(store), "--preset", "iemocap", "--config",
                str(write_config(tmp_path, epochs=1)), "--out", str(run), "--no-progress"]) == 0
    recorded = json.loads((run / "config.json").read_text())["data"]["extractors"]
    assert recorded["acoustic"]["name"] == "egemaps" and recorded["language"]["config"]["fallback"] == 0
    trained_on = FeatureStore(store)

    out = tmp_path / "emotions.parquet"
    assert mcr(["predict", str(clips["SAD"]), "--model", str(run), "--out", str(out), "--workers", "1",
                "--no-progress"]) == 0
    predicted = FeatureStore(f"{out}.store")
    assert predicted.stream_metadata("acoustic")["extractor"] == "egemaps"  # librosa's 43 features would not fit
    for m in ("language", "acoustic"):  # the configs of the training store, not today's defaults
        assert predicted.stream_metadata(m)["config_hash"] == trained_on.stream_metadata(m)["config_hash"]
    visual = json.loads(predicted.stream_metadata("visual")["config"])
    assert visual["min_detection_confidence"] == 0.4 and visual["max_faces"] > 1  # the run's, several faces
    meta = json.loads(pq.read_schema(out).metadata[b"mcr"])  # the table names the configs it used
    assert meta["extractors"]["language"]["config_hash"] == trained_on.stream_metadata("language")["config_hash"]
    assert meta["extractors"]["language"]["config"]["fallback"] == 0
    rows = pd.read_parquet(out)
    assert (rows["status"] == "ok").all() and rows["predicted_class"].isin([e.lower() for e in splits]).all()

    again = tmp_path / "again.csv"  # into the training store itself: its streams are the model's, reused as they are
    stream = Path(trained_on.stream_path("language", "sad"))
    before = stream.stat().st_mtime_ns
    pd.DataFrame([{"path": str(clips["SAD"]), "video_id": "sad"}]).to_csv(tmp_path / "sad.csv", index=False)
    assert mcr(["predict", str(tmp_path / "sad.csv"), "--model", str(run), "--out", str(again), "--store",
                str(store), "--workers", "1", "--no-progress"]) == 0
    assert stream.stat().st_mtime_ns == before  # not re-extracted
