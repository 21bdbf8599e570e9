"""The `mcr run` config is read strictly: unknown keys in any section are refused, naming them, before any stage."""
from __future__ import annotations

import pytest

from workflows.cli import main as mcr
from workflows.pipeline_config import load_config

GOOD = """
workdir = "work"
[extract]
input = "videos"
store = "store"
[train]
preset = "mosi"
epochs = 2
[train.model]
n_layers = 1
[evaluate]
split = "test"
[predict]
input = "new"
out = "p.parquet"
[report]
sample = 1
"""


def _write(tmp_path, text: str):
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    return path


def test_a_good_config_is_read_with_absolute_paths_and_defaults(tmp_path):
    config = load_config(_write(tmp_path, GOOD))
    assert config.extract.store == str(tmp_path / "store") and config.predict.out == str(tmp_path / "p.parquet")
    assert config.train.out == str(tmp_path / "work" / "run") and config.train.options == {
        "epochs": 2, "model": {"n_layers": 1}}
    assert config.evaluate.split == "test" and config.report.sample == 1 and config.predict.window is None


@pytest.mark.parametrize("section, typo", [("extract", "workrs = 2"), ("evaluate", "splt = 'valid'"),
                                           ("predict", "vtt_dir = 'subs'"), ("report", "smaple = 2")])
def test_unknown_keys_are_refused_by_name(tmp_path, section, typo):
    text = GOOD.replace(f"[{section}]\n", f"[{section}]\n{typo}\n")
    key = typo.split(" ")[0]
    with pytest.raises(ValueError, match=rf"unknown keys in \[{section}\]: {key}"):
        load_config(_write(tmp_path, text))


def test_training_typos_and_wrong_types_are_refused(tmp_path):
    with pytest.raises(ValueError, match="epocs"):
        load_config(_write(tmp_path, GOOD.replace("epochs = 2", "epocs = 2")))
    with pytest.raises(ValueError, match="n_layer"):
        load_config(_write(tmp_path, GOOD.replace("n_layers = 1", "n_layer = 1")))
    with pytest.raises(ValueError, match="sample = 'one'"):
        load_config(_write(tmp_path, GOOD.replace("sample = 1", "sample = 'one'")))
    with pytest.raises(ValueError, match="unknown sections predicts"):
        load_config(_write(tmp_path, GOOD.replace("[predict]", "[predicts]")))
    with pytest.raises(ValueError, match=r"\[predict\] needs out"):
        load_config(_write(tmp_path, GOOD.replace('out = "p.parquet"', "")))


def test_mcr_run_refuses_a_typo_before_any_stage_runs(tmp_path, capsys):
    config = _write(tmp_path, GOOD.replace("[evaluate]\n", "[evaluate]\nsplitt = 'x'\n"))
    assert mcr(["run", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "splitt" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "work").exists(), "no stage may start"


def test_the_ravdess_recipe_goes_from_the_release_folder_to_a_manifest(tmp_path):
    """examples/ravdess.toml: [prepare] writes the manifest from the release's file names and [extract] reads it."""
    import shutil
    from pathlib import Path

    from pipeline.corpus import read_manifest
    from workflows.pipeline import build_stages
    from workflows.stages import StageRunner

    example = Path(__file__).resolve().parents[2] / "examples" / "ravdess.toml"
    (tmp_path / "examples").mkdir()
    shutil.copy(example, tmp_path / "examples" / "ravdess.toml")
    for actor in (1, 2, 23):  # the recipe reads file names only
        folder = tmp_path / "data" / "RAVDESS" / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion in ("01", "05"):
            (folder / f"03-01-{emotion}-01-01-01-{actor:02d}.wav").write_bytes(b"")
        (folder / f"02-01-05-01-01-01-{actor:02d}.mp4").write_bytes(b"")  # video only: not this recipe's
    config = load_config(tmp_path / "examples" / "ravdess.toml")
    manifest = tmp_path / "runs" / "ravdess" / "manifest.csv"
    assert config.prepare.out == config.extract.input == str(manifest)
    assert config.prepare.options == {"split": "actors", "modality": "audio", "channel": "speech"}
    stages = build_stages(config, log=lambda line: None)
    assert [s.name for s in stages][:2] == ["prepare", "extract"]
    assert StageRunner(config.workdir).run(stages[:1]) == {"prepare": "ran"}
    sources = {s.video_id: s for s in read_manifest(manifest)}
    assert sorted(sources) == sorted(f"03-01-{e}-01-01-01-{a:02d}" for a in (1, 2, 23) for e in ("01", "05"))
    assert sources["03-01-05-01-01-01-23"].segments[0].labels["label"] == "angry"


def test_prepare_options_are_checked_against_the_corpus_recipe(tmp_path):
    text = GOOD.replace('input = "videos"\n', "").replace("[extract]", "[prepare]\ncorpus = 'ravdess'\nraw = 'r'\n"
                                                           "chanel = 'speech'\n[extract]")
    with pytest.raises(ValueError, match=r"unknown keys in \[prepare\] for ravdess: chanel"):
        load_config(_write(tmp_path, text))
    with pytest.raises(ValueError, match=r"\[extract\] needs input"):
        load_config(_write(tmp_path, GOOD.replace('input = "videos"\n', "")))
    with pytest.raises(ValueError, match="corpus = 'ravdes'"):
        load_config(_write(tmp_path, text.replace("'ravdess'", "'ravdes'")))


def test_extractors_are_chosen_by_name_and_checked_before_any_stage(tmp_path):
    config = load_config(_write(tmp_path, GOOD.replace("[extract]\n", "[extract]\nacoustic = 'whisper-encoder'\n")))
    assert config.extract.extractor_names() == {"acoustic": "whisper-encoder"}
    with pytest.raises(ValueError, match=r"\[extract\] acoustic = 'whisper-encodr': not an extractor of the acoustic stream"):
        load_config(_write(tmp_path, GOOD.replace("[extract]\n", "[extract]\nacoustic = 'whisper-encodr'\n")))
    with pytest.raises(ValueError, match=r"visual = 'librosa': not an extractor of the visual stream"):
        load_config(_write(tmp_path, GOOD.replace("[extract]\n", "[extract]\nvisual = 'librosa'\n")))
