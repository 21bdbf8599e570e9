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
