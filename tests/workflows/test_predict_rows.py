"""`mcr predict`'s rows on real media: one per spoken clip (whisper's misses included), long speech split at a
pause, speech without a face and a face without speech, self-describing columns and metadata, subtitles; and the
regression uncertainty."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import webvtt

from tests.extractors.media_files import cremad_clips
from tests.workflows.joined_video import write_mp4
from tests.workflows.synthetic import TINY_MODEL, write_config, write_mult_pickle, write_random_pickle
from workflows.cli import main as mcr

FPS, SR = 15, 16000
ORDER = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
MAX_UTTERANCE = 3.0  # --max-utterance: the six clips cut to their words (~4.7 s) must be split


# ------------------------------------------------------------------------------------------------- media
def _write(path: Path, pieces: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, float]]:
    """An MPEG-4 video of (audio (S,), frames (N, H, W, 3)) pieces back to back; -> each piece's (start, end) s."""
    audio, frames, spans, t = [], [], [], 0.0
    for wave, images in pieces:
        n = len(images)
        audio.append(np.pad(wave, (0, max(0, round(n / FPS * SR) - len(wave))))[: round(n / FPS * SR)])
        frames += list(images)
        spans.append((t, t + n / FPS))
        t += n / FPS
    write_mp4(path, frames, np.concatenate(audio), fps=FPS, sample_rate=SR)
    return spans


def _clip(media, start: float = 0.0, end: float | None = None):
    """(audio, frames) of a decoded clip between ``start`` and ``end`` seconds, frames cropped to even sizes."""
    end = media.duration if end is None else end
    a, b = int(round(start * FPS)), max(int(round(start * FPS)) + 1, int(round(end * FPS)))
    frames = media.frames[a:b]
    h, w = frames.shape[1:3]
    return media.audio[round(a / FPS * SR): round(b / FPS * SR)], frames[:, : h - h % 2, : w - w % 2]


def _speech_bounds(audio: np.ndarray) -> tuple[float, float]:
    """First and last 20-ms frame whose level is within 15 dB of the clip's loudest: the clip cut to its words, so
    that clips back to back leave no pause of MIN_PAUSE (at 30 dB they still leave 0.6-1.2 s, at 20 dB 0.2-0.5 s)."""
    hop = SR // 50
    rms = np.sqrt(np.mean(audio[: len(audio) // hop * hop].reshape(-1, hop) ** 2, axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -15)
    return loud[0] * hop / SR, (loud[-1] + 1) * hop / SR


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Four videos made of the CREMA-D clips, extracted into a store, and a tiny run of the store's feature sizes."""
    from extractors.media import decode
    from pipeline.store import FeatureStore
    from pipeline.store_source import segment_records

    clips = cremad_clips()
    media = {c: decode(clips[c], fps=FPS, max_side=320) for c in ORDER}
    root = tmp_path_factory.mktemp("predict_rows")
    videos = root / "videos"
    videos.mkdir()
    shape = _clip(media["ANG"])[1].shape[1:]
    silence = (np.zeros(SR, np.float32), np.zeros((FPS, *shape), np.uint8))  # 1 s: no sound, black frames
    spans = {}
    # the six clips with 1-s gaps; two in white noise (0 and -5 dB SNR: whisper hears other words) and one played
    # backwards, speech whisper cannot transcribe (it gives no word), as mumbling or a foreign language would be
    rng, pieces = np.random.default_rng(0), []
    for c in ORDER:
        audio, frames = _clip(media[c])
        snr = {"FEA": -5.0, "NEU": 0.0}.get(c)
        if snr is not None:
            level = np.sqrt(np.mean(audio ** 2)) * 10 ** (-snr / 20)
            audio = audio + rng.normal(0, level, len(audio)).astype(np.float32)
        if c == "HAP":
            audio = audio[::-1].copy()
        pieces += [(audio, frames), silence]
    spans["gaps"] = _write(videos / "gaps.mp4", pieces)[::2]
    # six clips cut to their words, back to back: ~4.7 s without a pause of MIN_PAUSE. (More repeats of the one
    # sentence make whisper fall back through every temperature: 18 took 26 s to transcribe, 6 take 11 s.)
    tight = [_clip(media[c], *_speech_bounds(media[c].audio)) for c in ORDER]
    spans["tight"] = _write(videos / "tight.mp4", tight)
    # speech without a face: two clips' audio over black frames
    black = [(a, np.zeros_like(f)) for a, f in (_clip(media["HAP"]), silence, _clip(media["SAD"]))]
    spans["noface"] = _write(videos / "noface.mp4", black)[::2]
    # a face without speech: a clip with its sound muted
    audio, frames = _clip(media["NEU"])
    spans["muted"] = _write(videos / "muted.mp4", [(np.zeros_like(audio), frames)])
    store = root / "store"
    assert mcr(["extract", str(videos), "--store", str(store), "--workers", "2", "--no-progress"]) == 0
    fs = FeatureStore(str(store))
    record = segment_records(fs, fs.segments(), max_len=None)[0]
    dims = tuple(record[m].shape[1] for m in ("language", "visual", "acoustic"))
    assert mcr(["train", "--data", str(write_random_pickle(root, dims)), "--config",
                str(write_config(root, epochs=1)), "--out", str(root / "run"), "--seeds", "2", "--no-progress"]) == 0
    return root, spans


@pytest.fixture(scope="module")
def predicted(world):
    root, _ = world
    out = root / "predictions.parquet"
    subs = {k: root / k for k in ("vtt", "srt", "json")}
    args = ["predict", str(root / "videos"), "--model", str(root / "run"), "--out", str(out), "--store",
            str(root / "store"), "--workers", "1", "--max-utterance", str(MAX_UTTERANCE), "--no-progress"]
    assert mcr(args + [x for k, d in subs.items() for x in (f"--{k}", str(d))]) == 0
    return pd.read_parquet(out), json.loads(pq.read_schema(out).metadata[b"mcr"]), subs


def _rows(table: pd.DataFrame, video: str) -> pd.DataFrame:
    return table[table["video_id"] == video].sort_values("start").reset_index(drop=True)


# -------------------------------------------------------------------------------------------------- tests
@pytest.mark.slow
def test_one_row_per_clip_including_clips_whisper_mishears(world, predicted):
    pytest.importorskip("silero_vad", reason="silero-vad (a dependency in pyproject.toml) finds speech in noise")
    from pipeline.store import FeatureStore

    root, spans = world
    rows = _rows(predicted[0], "gaps")
    assert len(rows) == len(ORDER), rows[["start", "end", "transcript"]]
    for (start, end), row in zip(spans["gaps"], rows.itertuples()):  # in order, each inside its own clip
        assert start - 0.5 <= row.start < row.end <= end + 0.5
    words = FeatureStore(str(root / "store")).read_stream("language", ["gaps"]).to_pandas()
    mid = (words["start"] + words["end"]) / 2
    heard = [" ".join(words["word"][mid.between(s, e)]) for s, e in spans["gaps"]]
    missed = [i for i, text in enumerate(heard) if not text]
    misheard = [i for i, text in enumerate(heard) if "jacket" not in text.lower()]
    print(f"whisper: {len(ORDER) - len(missed)} of {len(ORDER)} clips transcribed, {len(misheard)} not as "
          f"'Don't forget a jacket' ({heard}); voice activity: {len(rows)} rows")
    assert misheard, "whisper heard every clip right: the test no longer shows rows for speech it gets wrong"
    assert all(rows.loc[i, "transcript"] == "" and not rows.loc[i, "has_language"] for i in missed)
    assert all(rows.loc[i, "has_language"] for i in range(len(ORDER)) if i not in missed)
    assert (rows["speech_share"] > 0.5).all() and predicted[1]["coverage"]["share"] == 1.0


@pytest.mark.slow
def test_long_speech_is_split_at_a_pause_between_words(world, predicted):
    from pipeline.store import FeatureStore
    from pipeline.views import voice_series
    from workflows.annotate.segments import MIN_PAUSE, merge_intervals
    from workflows.annotate.speech import listen

    root, _ = world
    store = FeatureStore(str(root / "store"))
    words = store.read_stream("language", ["tight"]).to_pandas()
    speech = listen(store, "tight").speech
    stretches = merge_intervals([*speech, *zip(words["start"], words["end"])], MIN_PAUSE)
    assert max(e - s for s, e in stretches) > MAX_UTTERANCE  # the split below was needed
    rows = _rows(predicted[0], "tight")
    print(f"{len(words)} words; rows {list(zip(rows['start'], rows['end']))}")
    assert len(rows) >= 2 and (rows["end"] - rows["start"] <= MAX_UTTERANCE + 1e-6).all()
    assert (rows["start"].iloc[1:].to_numpy() == rows["end"].iloc[:-1].to_numpy()).all()
    voice = voice_series(store, "tight")
    times, level = voice.times, voice.level_db
    for cut in rows["start"].iloc[1:]:
        assert not ((words["start"] < cut - 1e-6) & (words["end"] > cut + 1e-6)).any(), f"cut at {cut} in a word"
        between_words = ((words["end"] <= cut + 1e-6) & (words["end"] > cut - 0.5)).any() and \
            ((words["start"] >= cut - 1e-6) & (words["start"] < cut + 0.5)).any()
        near, around = np.abs(times - cut) <= 0.03, np.abs(times - cut) <= 0.3
        dip = level[near].min() <= level[around].max() - 10
        assert between_words or dip, f"cut at {cut} is neither between two words nor where the sound dips"
    assert rows["n_words"].sum() == len(words)  # every word in exactly one row


@pytest.mark.slow
def test_speech_without_a_face_and_a_face_without_speech_are_predicted_with_the_stream_masked(predicted):
    table = predicted[0]
    noface = _rows(table, "noface")
    assert len(noface) == 2 and not noface["has_visual"].any() and (noface["face_id"] == -1).all()
    assert (noface["face_share"] == 0).all() and noface["has_acoustic"].all()
    assert noface["streams"].str.split(",").map(lambda s: "visual" not in s).all()
    muted = _rows(table, "muted")
    assert len(muted) >= 1 and not muted["has_language"].any() and muted["has_visual"].all()
    assert (muted["transcript"] == "").all() and muted["asr_confidence"].isna().all()
    assert (muted["face_id"] >= 0).all() and (muted["face_share"] > 0.5).all()
    for rows in (noface, muted):
        assert np.isfinite(rows["predicted_sentiment"]).all() and np.isfinite(rows["predicted_sentiment_sd"]).all()


@pytest.mark.slow
def test_rows_say_what_they_are_and_the_metadata_what_made_them(world, predicted):
    root, _ = world
    table, meta, _ = predicted
    for column in ("video_id", "video_path", "segment_id", "start", "end", "transcript", "asr_confidence", "streams",
                   "has_language", "has_acoustic", "has_visual", "face_id", "face_box", "face_share",
                   "speaker_confidence", "speaker_uncertain", "speech_share",
                   "input_shift", "predicted_sentiment", "predicted_sentiment_sd", "predicted_polarity"):
        assert column in table.columns, column
    assert not {"label", "sentiment", "sentiment_7", "sentiment_class"} & set(table.columns)
    assert table["video_path"].map(lambda p: Path(p).is_absolute() and Path(p).exists()).all()
    assert set(table["predicted_polarity"]) <= {"negative", "neutral", "positive"}
    spoken = table[table["has_language"]]
    assert spoken["asr_confidence"].between(0, 1).all() and (spoken["n_words"] > 0).all()
    assert (table["predicted_sentiment_sd"] > 0).all() and table["face_share"].between(0, 1).all()
    assert {"run", "task", "label_names", "scale", "extractors", "mcr_version", "placeholder_labels",
            "uncertainty_method", "coverage", "vad"} <= set(meta)
    assert meta["task"] == "regression" and meta["scale"] == [-3.0, 3.0] and meta["label_names"] == ["sentiment"]
    assert meta["run"] == str((root / "run").resolve()) and meta["placeholder_labels"] is False
    assert meta["uncertainty_method"] == "seeds" and meta["seeds"] == 2 and meta["vad"] == "silero-vad"
    assert set(meta["extractors"]) == {"language", "acoustic", "visual", "voice"}
    assert all(len(e["config_hash"]) == 16 and e["name"] for e in meta["extractors"].values())


@pytest.mark.slow
def test_subtitles_parse_one_cue_per_row(predicted):
    table, _, subs = predicted
    for vid, rows in table.groupby("video_id"):
        vtt = webvtt.read(str(subs["vtt"] / f"{vid}.vtt"))
        srt = webvtt.from_srt(str(subs["srt"] / f"{vid}.srt"))
        doc = json.loads((subs["json"] / f"{vid}.json").read_text())
        assert len(vtt.captions) == len(srt.captions) == len(doc["segments"]) == len(rows)
        assert [s["segment_id"] for s in doc["segments"]] == list(rows.sort_values("start")["segment_id"])
        assert {"text", "segments"} <= set(doc) and doc["mcr"]["task"] == "regression"
        assert "placeholder" not in (subs["vtt"] / f"{vid}.vtt").read_text().lower()


@pytest.mark.slow
def test_placeholder_labels_are_flagged_on_stderr_in_the_metadata_and_every_subtitle_header(world, tmp_path, capsys):
    root, _ = world
    run = tmp_path / "run"
    shutil.copytree(next((root / "run").glob("seed-*")), run)  # one seed: no uncertainty, and predict says so
    record = json.loads((run / "config.json").read_text())
    record["data"]["placeholder_labels"] = True  # what the training data's description records for the demo
    (run / "config.json").write_text(json.dumps(record))
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "muted.mp4").symlink_to(root / "videos" / "muted.mp4")
    out = tmp_path / "p.csv"
    capsys.readouterr()
    assert mcr(["predict", str(videos), "--model", str(run), "--out", str(out), "--store", str(root / "store"),
                "--workers", "1", "--no-progress", "--vtt", str(tmp_path / "vtt"), "--srt", str(tmp_path / "srt"),
                "--json", str(tmp_path / "json")]) == 0
    err = capsys.readouterr().err
    assert "PLACEHOLDER labels" in err and "speech coverage:" in err
    assert "predicted_sentiment_sd is empty: the run has one seed" in err
    assert pd.read_csv(out)["predicted_sentiment_sd"].isna().all()
    assert json.loads(Path(f"{out}.mcr.json").read_text())["placeholder_labels"] is True
    vtt = (tmp_path / "vtt" / "muted.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\nNOTE WARNING: this model was trained on PLACEHOLDER labels")
    first = webvtt.from_srt(str(tmp_path / "srt" / "muted.srt")).captions[0]
    assert first.start_time.in_milliseconds() == 0 and "PLACEHOLDER" in first.text
    assert "PLACEHOLDER" in json.loads((tmp_path / "json" / "muted.json").read_text())["notes"][0]


@pytest.mark.slow
def test_a_store_made_with_other_visual_settings_is_refused_in_one_line(world, tmp_path, capsys):
    root, _ = world  # its store was extracted with one face: predicting into it keeps that, asking otherwise fails
    out = tmp_path / "p.parquet"
    capsys.readouterr()
    assert mcr(["predict", str(root / "videos" / "muted.mp4"), "--model", str(root / "run"), "--out", str(out),
                "--store", str(root / "store"), "--visual", "pyfeat", "--workers", "1", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "extracted with mediapipe" in error and "max_faces=1, not pyfeat" in error and "--store" in error
    assert not out.exists()


def test_a_run_trained_on_a_store_with_placeholder_labels_knows_it(tmp_path):
    from tests.pipeline.test_sources import _small_store
    from workflows.runs import is_placeholder, load_run

    store = _small_store(tmp_path / "store")
    segments = store.segments()
    segments["placeholder_labels"] = 1.0  # the demo manifest's marker column
    store.write_segments(segments)
    assert mcr(["train", "--data", str(tmp_path / "store"), "--config", str(write_config(tmp_path, epochs=1)),
                "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert is_placeholder(load_run(tmp_path / "run"))
    assert mcr(["report", str(tmp_path / "run"), "--split", "valid"]) == 0
    assert "Trained on PLACEHOLDER labels" in (tmp_path / "run" / "report" / "index.html").read_text()
    segments["placeholder_labels"] = np.nan
    store.write_segments(segments)
    trained = load_run(tmp_path / "run")
    trained.data.pop("placeholder_labels", None)
    assert not is_placeholder(trained)


def _shifted(split, factor: float = 10.0):
    return dataclasses.replace(split, **{m: getattr(split, m) * factor for m in ("language", "visual", "acoustic")})


@pytest.mark.slow
def test_spread_over_seeds_grows_on_inputs_unlike_the_training_data(tmp_path):
    from pipeline.sources import load_source
    from workflows.predict import input_shift, regression_spread
    from workflows.runs import load_run

    data = write_mult_pickle(tmp_path, sizes=(240, 40, 40))
    config = tmp_path / "c.json"  # the model's default dropouts
    config.write_text(json.dumps({"batch_size": 16, "lr": 3e-3, "cpu_threads": 1, "epochs": 6,
                                  "model": {"d_model": 8, "n_heads": 2, "n_layers": 1}}))
    assert mcr(["train", "--data", str(data), "--config", str(config), "--out", str(tmp_path / "run"),
                "--seeds", "3", "--no-progress"]) == 0
    trained, test = load_run(tmp_path / "run"), load_source(data)["test"]
    sd, info = regression_spread(trained, test)
    far, _ = regression_spread(trained, _shifted(test))
    assert info == {"uncertainty_method": "seeds", "seeds": 3}
    assert far.mean() > 1.2 * sd.mean(), (sd.mean(), far.mean())
    shift = input_shift(test, trained.normalizer)
    assert 0.5 < np.median(shift) < 2.0 and np.median(input_shift(_shifted(test), trained.normalizer)) > 5


def test_a_one_seed_run_has_no_uncertainty_and_says_so(tmp_path):
    from pipeline.sources import load_source
    from workflows.predict import regression_spread
    from workflows.runs import load_run

    data = write_mult_pickle(tmp_path, sizes=(48, 16, 16))
    (tmp_path / "c.json").write_text(json.dumps({"batch_size": 16, "cpu_threads": 1, "epochs": 1,
                                                 "model": TINY_MODEL}))
    assert mcr(["train", "--data", str(data), "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "run"),
                "--no-progress"]) == 0
    sd, info = regression_spread(load_run(tmp_path / "run"), load_source(data)["test"])
    assert info == {"uncertainty_method": "none", "seeds": 1}
    assert sd.shape == (16,) and np.isnan(sd).all()


def test_prediction_columns_are_named_as_predictions():
    from workflows.predict import prediction_columns

    reg = prediction_columns("regression", np.array([[0.49], [-0.5], [2.7]], np.float32))
    assert set(reg) == {"predicted_sentiment", "predicted_polarity"}
    assert list(reg["predicted_polarity"]) == ["neutral", "negative", "positive"]
    emo = prediction_columns("iemocap", np.array([[[0, 1], [0, 0], [0, 3], [0, 0]]], np.float32))
    assert set(emo) == {"p_happy", "p_sad", "p_angry", "p_neutral", "predicted_emotion"}
    assert emo["predicted_emotion"][0] == "angry"
    cls = prediction_columns("classification", np.array([[0.0, 2.0]], np.float32), ["ANG", "HAP"])
    assert set(cls) == {"p_ANG", "p_HAP", "predicted_class"} and cls["predicted_class"][0] == "HAP"
    assert cls["p_ANG"][0] + cls["p_HAP"][0] == pytest.approx(1.0)
