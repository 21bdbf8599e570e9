"""Corpus recipes on folder layouts built here with each release's naming conventions and label file formats, and on
the shared CREMA-D clips and MOSI labels. The media files are a few bytes: recipes read names and labels only."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline.corpus import read_manifest
from pipeline.recipes import available, build, write_manifest
from tests.extractors.media_files import CREMAD, SHARED
from workflows.cli import main

MOSI_JSON = SHARED / "data" / "mosi" / "mosi_segments_labels_splits.json"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00fake media")
    return path


def write_csd(path: Path, root: str, data: dict[str, tuple[list[list[float]], list[list[float]]]]) -> Path:
    """A CMU-MultimodalSDK computational sequence: <root>/data/<video>/{features, intervals}, <root>/metadata."""
    h5py = pytest.importorskip("h5py")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        group = f.create_group(root)
        for vid, (features, intervals) in data.items():
            video = group.create_group(f"data/{vid}")
            video.create_dataset("features", data=np.asarray(features, np.float32))
            video.create_dataset("intervals", data=np.asarray(intervals, np.float64))
        group.create_group("metadata").attrs["root name"] = root
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def round_trip(rows: list[dict], tmp_path: Path) -> dict:
    """The rows written as a manifest and read back as the extractor reads it: video id -> VideoSource."""
    return {s.video_id: s for s in read_manifest(write_manifest(rows, tmp_path / "manifest.csv"))}


def test_every_corpus_is_registered():
    from pipeline.recipes import PRIMARY

    assert available() == ["cmu-mosi", "cmu-mosei", "iemocap", "crema-d", "ravdess", "meld"] == list(PRIMARY)


# ---------------------------------------------------------------------------------------------------- CMU-MOSI
def mosi_layout(root: Path) -> Path:
    for vid in ("03bSnISJMiM", "_dI--eQ6qVU"):
        touch(root / "Raw" / "Video" / "Full" / f"{vid}.mp4")
        touch(root / "Raw" / "Video" / "Segmented" / f"{vid}_1.mp4")
    touch(root / "Raw" / "Audio" / "WAV_16000" / "Full" / "03bSnISJMiM.wav")
    return root


def test_mosi_from_the_sdk_csd_and_standard_folds(tmp_path):
    root = mosi_layout(tmp_path / "CMU-MOSI")
    write_csd(root / "CMU_MOSI_Opinion_Labels.csd", "Opinion Segment Labels", {
        "03bSnISJMiM": ([[2.4], [-0.8]], [[51.9, 55.9], [56.0, 66.8]]),
        "_dI--eQ6qVU": ([[-3.0]], [[1.0, 4.5]]),
        "absentVideo": ([[1.0]], [[0.0, 2.0]]),
    })
    (root / "cmu_mosi_std_folds.py").write_text(
        "standard_train_fold=['03bSnISJMiM','absentVideo']\nstandard_valid_fold=['_dI--eQ6qVU']\n"
        "standard_test_fold=[]\n")
    prepared = build("cmu-mosi", root)
    assert prepared.missing == [str((root / "Raw/Video/Full/absentVideo.mp4").resolve())]
    assert prepared.missing_rows == 1
    rows = {r["segment_id"]: r for r in prepared.rows}
    assert list(rows) == ["03bSnISJMiM[0]", "03bSnISJMiM[1]", "_dI--eQ6qVU[0]"]
    first = rows["03bSnISJMiM[0]"]
    assert first["path"].endswith("Raw/Video/Full/03bSnISJMiM.mp4") and first["split"] == "train"
    assert first["label"] == pytest.approx(2.4) and (first["start"], first["end"]) == pytest.approx((51.9, 55.9))
    assert rows["_dI--eQ6qVU[0]"]["video_id"] == "dI--eQ6qVU"  # the folder scan's rule: no leading '_'
    assert rows["_dI--eQ6qVU[0]"]["split"] == "valid"
    sources = round_trip(prepared.rows, tmp_path)
    assert [s.segment_id for s in sources["03bSnISJMiM"].segments] == ["03bSnISJMiM[0]", "03bSnISJMiM[1]"]
    assert sources["03bSnISJMiM"].segments[1].labels == {"label": pytest.approx(-0.8)}


def test_mosi_from_a_json_labels_file_with_splits(tmp_path):
    root = mosi_layout(tmp_path / "CMU-MOSI")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([
        {"video_id": "03bSnISJMiM", "seg_index": 0, "segment_id": "03bSnISJMiM[0]", "label": 2.4, "start": 51.9,
         "end": 55.9, "split": "train"},
        {"video_id": "_dI--eQ6qVU", "seg_index": 3, "segment_id": "_dI--eQ6qVU[3]", "label": -1.0, "start": 3.0,
         "end": 3.0, "split": "test"}]))
    prepared = build("cmu-mosi", root, labels=labels)
    assert [r["segment_id"] for r in prepared.rows] == ["03bSnISJMiM[0]"]
    assert prepared.invalid == ["dI--eQ6qVU/_dI--eQ6qVU[3]"]  # ends where it starts


@pytest.mark.skipif(not MOSI_JSON.is_file(), reason="shared MOSI labels not found")
def test_mosi_on_the_shared_labels_file(tmp_path):
    records = json.loads(MOSI_JSON.read_text())
    present = sorted({r["video_id"] for r in records})[:3]
    for vid in present:
        touch(tmp_path / "Raw" / "Video" / "Full" / f"{vid}.mp4")
    prepared = build("cmu-mosi", tmp_path, labels=MOSI_JSON)
    expected = [r for r in records if r["video_id"] in present and r["end"] > r["start"]]
    assert len(prepared.rows) == len(expected) and prepared.videos == 3
    assert len(prepared.missing) == len({r["video_id"] for r in records}) - 3
    assert {r["segment_id"]: r["split"] for r in prepared.rows} == {r["segment_id"]: r["split"] for r in expected}
    assert all(-3 <= r["label"] <= 3 for r in prepared.rows)


# --------------------------------------------------------------------------------------------------- CMU-MOSEI
def test_mosei_from_the_sdk_csd(tmp_path):
    root = tmp_path / "CMU-MOSEI"
    touch(root / "Raw" / "Videos" / "Full" / "Combined" / "-3g5yACwYnA.mp4")
    touch(root / "Raw" / "Videos" / "Segmented" / "Combined" / "-3g5yACwYnA_0.mp4")
    write_csd(root / "labels" / "CMU_MOSEI_Labels.csd", "All Labels", {
        "-3g5yACwYnA": ([[1.0, 0.666, 0.0, 0.0, 0.333, 0.0, 0.0], [-2.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0]],
                        [[82.88, 100.19], [119.93, 125.67]])})
    rows = build("cmu-mosei", root).rows
    assert [r["video_id"] for r in rows] == ["3g5yACwYnA"] * 2
    assert [r["segment_id"] for r in rows] == ["-3g5yACwYnA[0]", "-3g5yACwYnA[1]"]
    assert rows[0]["path"].endswith("Full/Combined/-3g5yACwYnA.mp4") and rows[0]["split"] is None
    assert rows[1]["label"] == -2.0 and rows[1]["anger"] == 2.0 and rows[0]["happy"] == pytest.approx(0.666)
    assert set(rows[0]) >= {"label", "happy", "sad", "anger", "surprise", "disgust", "fear"}


def test_mosei_from_a_csv_with_a_sentiment_column_and_json_folds(tmp_path):
    root = tmp_path / "mosei"
    touch(root / "Videos" / "abc.mp4")
    labels = write_csv(tmp_path / "mosei.csv", ["video_id", "start", "end", "sentiment", "happy"],
                       [["abc", 0.5, 2.0, 0.6, 1.0], ["abc", 2.0, 3.5, -1.2, 0.0]])
    folds = tmp_path / "folds.json"
    folds.write_text(json.dumps({"train": [], "valid": [], "test": ["abc"]}))
    rows = build("cmu-mosei", root, labels=labels, folds=folds).rows
    assert [(r["segment_id"], r["label"], r["happy"], r["split"]) for r in rows] == [
        ("abc[0]", 0.6, 1.0, "test"), ("abc[1]", -1.2, 0.0, "test")]


def test_cmu_without_labels_says_what_to_give(tmp_path):
    touch(tmp_path / "Raw" / "Video" / "Full" / "x.mp4")
    with pytest.raises(FileNotFoundError, match=r"\[prepare\] no CMU_MOSI_Opinion_Labels.csd found.*--labels"):
        build("cmu-mosi", tmp_path)


# ----------------------------------------------------------------------------------------------------- IEMOCAP
EVALUATION = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\t{d}_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
C-E3:\tNeutral;\t()
A-E3:\tval 3; act 2; dom  2;\t()

[10.0100 - 11.3925]\t{d}_M000\texc\t[3.5000, 3.5000, 3.0000]
C-E1:\tExcited;\t()

[14.8872 - 18.0175]\t{d}_F001\tfru\t[2.0000, 3.0000, 3.5000]

[19.2900 - 20.7875]\t{d}_M001\txxx\t[2.5000, 3.0000, 3.0000]
"""


def iemocap_layout(root: Path) -> Path:
    for session, dialogs in ((1, ["Ses01F_impro01", "Ses01M_script01_1"]), (5, ["Ses05F_impro03"])):
        folder = root / f"Session{session}" / "dialog"
        for d in dialogs:
            (folder / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
            (folder / "EmoEvaluation" / f"{d}.txt").write_text(EVALUATION.format(d=d))
            (folder / "EmoEvaluation" / "Categorical").mkdir(exist_ok=True)
            (folder / "EmoEvaluation" / "Categorical" / f"{d}_e1_cat.txt").write_text(f"{d}_F000 :Neutral; ()\n")
            touch(folder / "avi" / "DivX" / f"{d}.avi")
        (folder / "EmoEvaluation" / "._Ses0x.txt").write_bytes(b"\x00\x05mac")
    return root


def test_iemocap_utterances_from_emo_evaluation(tmp_path):
    iemocap_layout(tmp_path / "IEMOCAP_full_release")
    prepared = build("iemocap", tmp_path)  # a folder holding IEMOCAP_full_release works too
    rows = {r["segment_id"]: r for r in prepared.rows}
    assert len(rows) == 12 and prepared.videos == 3 and not prepared.missing
    first = rows["Ses01F_impro01_F000"]
    assert first["video_id"] == "Ses01F_impro01"
    assert first["path"].endswith("Session1/dialog/avi/DivX/Ses01F_impro01.avi")
    assert (first["start"], first["end"]) == (6.2901, 8.2357) and first["label"] == "neutral"
    assert (first["valence"], first["activation"], first["dominance"]) == (2.5, 2.5, 2.5)
    assert first["session"] == 1 and first["speaker"] == "Ses01F" and first["split"] == "train"
    scripted = rows["Ses01M_script01_1_M000"]
    assert (scripted["video_id"], scripted["label"], scripted["speaker"]) == ("Ses01M_script01_1", "excited", "Ses01M")
    assert rows["Ses01F_impro01_M001"]["label"] == "no_agreement"
    assert {r["split"] for r in rows.values() if r["session"] == 5} == {"test"}
    assert Counter(r["label"] for r in rows.values()) == {"neutral": 3, "excited": 3, "frustrated": 3,
                                                          "no_agreement": 3}


def test_iemocap_leave_one_session_out_and_four_classes(tmp_path):
    iemocap_layout(tmp_path)
    rows = build("iemocap", tmp_path, test_session=1, classes="four").rows
    assert Counter(r["label"] for r in rows) == {"neutral": 3, "happy": 3}  # excited merged, others dropped
    assert {r["session"]: r["split"] for r in rows} == {1: "test", 5: "train"}
    sources = round_trip(rows, tmp_path)
    assert sorted(sources) == ["Ses01F_impro01", "Ses01M_script01_1", "Ses05F_impro03"]
    assert sources["Ses05F_impro03"].segments[0].labels["session"] == 5.0
    with pytest.raises(ValueError, match="test-session must be 1..5"):
        build("iemocap", tmp_path, test_session=6)


# ----------------------------------------------------------------------------------------------------- CREMA-D
def test_crema_d_names_votes_demographics_and_actor_split(tmp_path):
    root = tmp_path / "CREMA-D"
    names = [f"{actor}_{s}_{e}_{lv}" for actor in range(1001, 1011)
             for s, e, lv in (("DFA", "ANG", "XX"), ("IEO", "HAP", "HI"))]
    for name in names:
        touch(root / "VideoFlash" / f"{name}.flv")
        touch(root / "AudioWAV" / f"{name}.wav")
    touch(root / "VideoFlash" / "README.flv")  # not a clip name: ignored
    write_csv(root / "processedResults" / "summaryTable.csv",
              ["", "FileName", "VoiceVote", "VoiceLevel", "FaceVote", "FaceLevel", "MultiModalVote",
               "MultiModalLevel"],
              [[1, "1001_DFA_ANG_XX", "A", 60.5, "A:N", 50, "A", 70],
               [2, "1001_IEO_HAP_HI", "H", 80, "H", 75, "N", 40]])
    write_csv(root / "VideoDemographics.csv", ["ActorID", "Age", "Sex", "Race", "Ethnicity"],
              [[1001, 51, "Male", "Caucasian", "Not Hispanic"], [1002, 21, "Female", "Caucasian", "Not Hispanic"]])
    rows = {r["segment_id"]: r for r in build("crema-d", root, split="actors").rows}
    assert sorted(rows) == sorted(names)
    ang = rows["1001_DFA_ANG_XX"]
    assert ang["path"].endswith("VideoFlash/1001_DFA_ANG_XX.flv") and ang["label"] == "angry"
    assert (ang["intensity"], ang["sentence"], ang["text"], ang["actor"]) == ("unspecified", "DFA",
                                                                             "Don't forget a jacket", 1001)
    assert (ang["sex"], ang["age"]) == ("male", 51.0)
    assert (ang["voice_vote"], ang["face_vote"], ang["multimodal_vote"], ang["voice_level"]) == (
        "angry", "angry:neutral", "angry", 60.5)
    assert rows["1001_IEO_HAP_HI"]["intensity"] == "high" and rows["1001_IEO_HAP_HI"]["multimodal_vote"] == "neutral"
    assert "voice_vote" not in rows["1005_DFA_ANG_XX"]
    split_of_actor = {r["actor"]: r["split"] for r in rows.values()}
    assert split_of_actor == {**{a: "train" for a in range(1001, 1009)}, 1009: "valid", 1010: "test"}
    audio = build("crema-d", root, media="audio").rows
    assert len(audio) == 20 and all(r["path"].endswith(".wav") and r["split"] is None for r in audio)


def test_crema_d_on_the_shared_clips(tmp_path):
    if len(list(CREMAD.glob("*.flv"))) < 6:
        pytest.skip(f"CREMA-D clips not found in {CREMAD}")
    out = tmp_path / "cremad.csv"
    assert main(["prepare", "crema-d", str(CREMAD), "--out", str(out)]) == 0
    sources = read_manifest(out)
    assert len(sources) == 6
    emotions = {s.video_id.split("_")[2]: s.segments[0].labels["label"] for s in sources}
    assert emotions == {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral",
                        "SAD": "sad"}
    assert all(Path(s.path).is_file() and s.segments[0].end is None for s in sources)
    assert {s.segments[0].labels["text"] for s in sources} == {"Don't forget a jacket"}


# ----------------------------------------------------------------------------------------------------- RAVDESS
def test_ravdess_file_name_codes(tmp_path):
    root = tmp_path / "RAVDESS"
    for actor in (1, 2, 3):
        touch(root / f"Actor_{actor:02d}" / f"01-01-06-01-02-01-{actor:02d}.mp4")
        touch(root / f"Actor_{actor:02d}" / f"02-01-06-01-02-01-{actor:02d}.mp4")
        touch(root / f"Actor_{actor:02d}" / f"01-02-03-02-01-02-{actor:02d}.mp4")
        touch(root / "Audio_Speech_Actors_01-24" / f"Actor_{actor:02d}" / f"03-01-08-02-02-02-{actor:02d}.wav")
    rows = {r["video_id"]: r for r in build("ravdess", root).rows}
    assert sorted(rows) == sorted(f"01-0{c}-0{e}-0{i}-0{s}-0{r}-{a:02d}" for a in (1, 2, 3)
                                  for c, e, i, s, r in ((1, 6, 1, 2, 1), (2, 3, 2, 1, 2)))
    fear = rows["01-01-06-01-02-01-01"]
    assert (fear["label"], fear["intensity"], fear["statement"], fear["text"]) == (
        "fearful", "normal", 2, "Dogs are sitting by the door")
    assert (fear["actor"], fear["sex"], fear["channel"], fear["repetition"], fear["media"]) == (
        1, "male", "speech", 1, "av")
    song = rows["01-02-03-02-01-02-02"]
    assert (song["label"], song["intensity"], song["channel"], song["sex"]) == ("happy", "strong", "song", "female")
    audio = build("ravdess", root, modality="audio", channel="speech", split="actors").rows
    assert [r["label"] for r in audio] == ["surprised"] * 3 and all(r["path"].endswith(".wav") for r in audio)
    assert [r["split"] for r in sorted(audio, key=lambda r: r["actor"])] == ["train", "valid", "test"]
    assert len(build("ravdess", root, modality="all").rows) == 12


# -------------------------------------------------------------------------------------------------------- MELD
MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
               "Episode", "StartTime", "EndTime"]


def test_meld_csvs_and_splits(tmp_path):
    root = tmp_path / "MELD.Raw"
    write_csv(root / "train_sent_emo.csv", MELD_HEADER, [
        [1, "also I was the point person on my company\x92s transition", "Chandler", "neutral", "neutral", 0, 0, 8,
         21, "00:16:16,059", "00:16:21,731"],
        [2, "You must\x92ve had your hands full.", "The Interviewer", "neutral", "neutral", 0, 1, 8, 21,
         "00:16:21,940", "00:16:23,442"],
        [3, "That I did. That I did.", "Chandler", "joy", "positive", 1, 0, 8, 21, "00:16:23,442", "00:16:26,389"]])
    write_csv(root / "dev_sent_emo.csv", MELD_HEADER, [
        [1, "Oh my God, he\u2019s lost it. He\u2019s totally lost it.", "Phoebe", "sadness", "negative", 0, 0, 4, 7,
         "00:20:57,256", "00:21:00,049"],
        [2, "What?", "Monica", "surprise", "negative", 110, 7, 4, 7, "00:21:00,961", "00:21:02,261"]],
        encoding="cp1252")  # not UTF-8: the reader must not fail on it
    write_csv(root / "test_sent_emo.csv", MELD_HEADER, [
        [1, "Why do all you\x92re coffee mugs have numbers on the bottom?", "Mark", "surprise", "positive", 0, 0, 3,
         19, "00:14:38,127", "00:14:40,378"]])
    for name in ("dia0_utt0", "dia0_utt1", "dia1_utt0"):
        touch(root / "train_splits" / f"{name}.mp4")
    touch(root / "train_splits" / "._dia0_utt0.mp4")
    touch(root / "dev_splits_complete" / "dia0_utt0.mp4")  # dia110_utt7 is missing, as in the release
    touch(root / "output_repeated_splits_test" / "dia0_utt0.mp4")
    prepared = build("meld", tmp_path)
    rows = {r["video_id"]: r for r in prepared.rows}
    assert sorted(rows) == ["dev_dia0_utt0", "test_dia0_utt0", "train_dia0_utt0", "train_dia0_utt1",
                            "train_dia1_utt0"]
    assert prepared.missing == [str((root / "dev_splits_complete" / "dia110_utt7.mp4").resolve())]
    joy = rows["train_dia1_utt0"]
    assert (joy["label"], joy["sentiment"], joy["speaker"], joy["split"]) == ("joy", "positive", "Chandler", "train")
    assert (joy["dialogue"], joy["utterance"], joy["season"], joy["episode"]) == (1, 0, 8, 21)
    assert rows["dev_dia0_utt0"]["split"] == "valid" and rows["test_dia0_utt0"]["label"] == "surprise"
    assert rows["dev_dia0_utt0"]["path"].endswith("dev_splits_complete/dia0_utt0.mp4")
    assert sorted(round_trip(prepared.rows, tmp_path)) == sorted(rows)


def test_prepare_command_reports_missing_files_and_relabels(tmp_path, capsys):
    test_meld_csvs_and_splits(tmp_path)
    out = tmp_path / "meld.csv"
    assert main(["prepare", "meld", str(tmp_path / "MELD.Raw"), "--out", str(out),
                 "--label-column", "sentiment"]) == 0
    printed = capsys.readouterr().out
    assert "5 segments of 5 videos" in printed and "missing   : 1 video files" in printed
    assert "dia110_utt7.mp4" in printed and "splits    : train 3, valid 1, test 1" in printed
    sources = {s.video_id: s for s in read_manifest(out)}
    assert sources["train_dia1_utt0"].segments[0].labels["label"] == "positive"
    assert sources["train_dia1_utt0"].segments[0].labels["emotion"] == "joy"
    assert main(["prepare", "meld", str(tmp_path / "MELD.Raw"), "--out", str(out), "--test-session", "2"]) == 2
    assert "meld takes no option --test-session" in capsys.readouterr().err
    assert main(["prepare", "iemocap", str(tmp_path / "MELD.Raw"), "--out", str(out)]) == 2
    assert "no Session1..Session5 folders" in capsys.readouterr().err
