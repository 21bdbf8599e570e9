"""The benchmarks' helpers: the WER of benchmarks/extract.py, the section writer of benchmarks/report.py and the
plumbing of benchmarks/ravdess.py on a small RAVDESS-shaped folder."""
from __future__ import annotations

import math

import numpy as np

import pytest

from benchmarks import report
from benchmarks.extract import normalise, word_error_rate


def _edits(hypothesis: list[str], reference: list[str]) -> int:
    """Word-level Levenshtein distance, the definition jiwer's WER counts."""
    row = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        prev, row[0] = row[0], i
        for j, r in enumerate(reference, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (h != r))
    return row[-1]


def test_wer_is_all_edits_over_all_reference_words():
    reference = normalise("Don't forget a jacket.")
    assert reference == ["don't", "forget", "a", "jacket"]
    hyps = [normalise(t) for t in ("don't forget a jacket", "Don't forget to jack it!", "", "forget a jacket now")]
    expected = sum(_edits(h, reference) for h in hyps) / (len(reference) * len(hyps))
    assert abs(word_error_rate(hyps, reference) - expected) < 1e-12
    assert word_error_rate([reference], reference) == 0.0
    assert math.isnan(word_error_rate([], reference))


def test_write_section_replaces_its_own_section_only(tmp_path):
    doc = tmp_path / "docs" / "benchmarks.md"
    report.write_section("a", "first", doc)
    report.write_section("b", "other", doc)
    report.write_section("a", "second", doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert "<!-- BEGIN a -->\nsecond\n<!-- END a -->" in text and "first" not in text
    assert text.index("BEGIN a") < text.index("BEGIN b") and "other" in text
    assert [p.name for p in doc.parent.iterdir()] == ["benchmarks.md"]


# ------------------------------------------------------------------------------------ benchmarks/ravdess.py
def _ravdess_fixture(root, actors=6) -> None:
    """Real WAVs in the RAVDESS layout (``Actor_XX/03-01-EE-II-SS-RR-AA.wav``): a low quiet tone for sad (04), a
    high loud one for angry (05), each actor's voice a little higher than the last."""
    import numpy as np
    import soundfile

    sr = 16000
    t = np.arange(int(0.8 * sr)) / sr
    for actor in range(1, actors + 1):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion, (f0, gain) in {"04": (110.0, 0.05), "05": (260.0, 0.5)}.items():
            f = f0 * (1 + 0.03 * actor)
            wave = gain * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t))
            soundfile.write(folder / f"03-01-{emotion}-01-01-01-{actor:02d}.wav", wave.astype(np.float32), sr)


@pytest.mark.slow
def test_ravdess_benchmark_probes_and_writes_its_section_on_actor_folds(tmp_path):
    import json

    from benchmarks import ravdess

    raw = tmp_path / "RAVDESS"
    _ravdess_fixture(raw)
    doc, image = tmp_path / "benchmarks.md", tmp_path / "confusion.png"
    assert ravdess.main([str(raw), "--work", str(tmp_path / "work"), "--models", "none", "--probes", "librosa",
                         "--folds", "3", "--language", "none", "--workers", "1", "--write", "--doc", str(doc),
                         "--image", str(image)]) == 0
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert results["folds"] == [["1", "2"], ["3", "4"], ["5", "6"]]  # consecutive actors, none in two folds
    probe, majority = results["rows"]
    assert probe["name"] == "linear probe of `librosa`" and sum(map(sum, probe["confusion"]["matrix"])) == 12
    assert majority["unweighted_accuracy"] == 0.5  # one class predicted: half the mean recall of two classes
    assert probe["unweighted_accuracy"] > majority["unweighted_accuracy"]  # the tones differ: the probe hears it
    assert results["extraction"]["librosa"]["videos"] == 12
    text = doc.read_text()
    assert "<!-- BEGIN ravdess -->" in text and "| linear probe of `librosa` |" in text and "1, 2; 2: 3, 4" in text
    assert image.stat().st_size > 0

    # --no-extract: the stores as they are, no prepare, no extract, the costs they recorded
    (tmp_path / "work" / "manifest.csv").unlink()
    assert ravdess.main([str(raw), "--work", str(tmp_path / "work"), "--models", "none", "--probes", "librosa",
                         "--folds", "3", "--no-extract"]) == 0
    again = json.loads((tmp_path / "work" / "results.json").read_text())
    assert not (tmp_path / "work" / "manifest.csv").exists()
    assert [r["confusion"] for r in again["rows"]] == [r["confusion"] for r in results["rows"]]
    assert again["extraction"] == results["extraction"]
    with pytest.raises(FileNotFoundError, match="no store there"):
        ravdess.main([str(raw), "--work", str(tmp_path / "work"), "--store", str(tmp_path / "none"), "--models",
                      "none", "--probes", "librosa", "--no-extract"])


# ------------------------------------------------------------------------------------ benchmarks/media.py
def test_utterances_are_read_from_the_corpora_file_names(tmp_path):
    from benchmarks.media import utterance_of

    ravdess = utterance_of(tmp_path / "Actor_07" / "03-01-05-02-02-01-07.wav")
    assert (ravdess.speaker, ravdess.text, ravdess.video) == ("ravdess-07", "dogs are sitting by the door", False)
    assert utterance_of(tmp_path / "OAF_back_angry.wav").text == "say the word back"
    assert utterance_of(tmp_path / "12testYAF_gaze_ps39.wav").speaker == "tess-YAF"
    cremad = utterance_of(tmp_path / "1001_DFA_ANG_XX.flv")
    assert (cremad.speaker, cremad.text, cremad.video) == ("cremad-1001", "don't forget a jacket", True)
    assert utterance_of(tmp_path / "03-02-05-02-02-01-07.wav") is None  # RAVDESS song: not speech
    assert utterance_of(tmp_path / "holiday.mp4") is None


def test_speech_span_trims_the_silence_around_a_recording():
    import numpy as np

    from benchmarks.media import speech_span

    sr = 16000
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr)
    audio = np.concatenate([np.zeros(sr // 2), tone, np.zeros(sr)]).astype(np.float32)
    start, end = speech_span(audio, sr)
    assert start == pytest.approx(0.45, abs=0.011) and end == pytest.approx(1.6, abs=0.011)


@pytest.mark.slow
def test_dense_speech_joins_speakers_in_turn_without_their_pauses(tmp_path):
    import shutil

    from benchmarks.media import dense_speech, face_stills, speakers_in_turn
    from extractors.media import decode
    from tests.extractors.media_files import CREMAD, cremad_clips

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    clips = cremad_clips()
    tess = tmp_path / "tess"
    tess.mkdir()
    import soundfile

    media = decode(clips["ANG"], video=False)
    for name in ("OAF_back_angry", "YAF_back_angry"):  # a voice of another speaker, audio only, 1 s of silence after
        soundfile.write(tess / f"{name}.wav", np.concatenate([media.audio, np.zeros(16000, np.float32)]), 16000)
    order = speakers_in_turn([CREMAD, tess], per_speaker=2)
    assert len(order) == 4 and {u.speaker for u in order[:3]} == {"cremad-1001", "tess-OAF", "tess-YAF"}
    seconds, said = dense_speech(tmp_path / "dense.mp4", [CREMAD, tess], face_stills(), seconds=5.0,
                                 size=(320, 180), fps=25)
    out = decode(tmp_path / "dense.mp4", fps=None)
    assert out.frames.shape[1:3] == (180, 320) and out.native_fps == pytest.approx(25)
    assert abs(out.duration - seconds) < 0.1 and 5.0 <= seconds < 5.0 + 3.0
    assert seconds < sum(decode(u.path, video=False).duration for u in said) - 0.5  # the pauses left out
