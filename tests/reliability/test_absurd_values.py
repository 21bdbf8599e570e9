"""Issue 17, items 5-8: every absurd number is refused before any work, in one line naming the option (and the
file), exit 2: command-line flags, ``mcr run`` TOML, ``mcr train --config`` files, run directories and
checkpoints alike (one check, :mod:`pipeline.options`). Before: tracebacks, internal errors (exit 1), silent
acceptances and runaways (``--workers 10000``, ``--window 1e-6``, ``seeds = 2**64 - 1``, ``n_layers = 1e6``).

Each case also checks that no work started: the output folder, store or run it would write is not there.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from pipeline.files import sha256_file
from tests.workflows.synthetic import train_tiny, write_config
from workflows.cli import main as mcr

TIMES: list[float] = []  # seconds from the call to the error, per case (docs/reliability.md)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(a MulT pickle, a one-epoch run trained on it, a --config file for a tiny model)."""
    root = tmp_path_factory.mktemp("tiny")
    data, run = train_tiny(root)
    return data, run, write_config(root, epochs=1)


def refused(capsys, argv, *named: str) -> str:
    """Run ``mcr argv``; it must exit 2 with one line on stderr, no traceback, no internal error, naming each of
    ``named``."""
    capsys.readouterr()
    started = time.perf_counter()
    code = mcr([str(a) for a in argv])
    TIMES.append(time.perf_counter() - started)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1, err
    line = err[0]
    assert "Traceback" not in line and "internal error" not in line, line
    for name in named:
        assert name in line, f"{name!r} not in {line!r}"
    return line


# --------------------------------------------------------------------------------------------- command-line flags
TRAIN_FLAGS = [("--batch-size", "0"), ("--batch-size", "-1"), ("--seeds", "0"), ("--seeds", "-3"),
               ("--seeds", "18446744073709551615"), ("--cpu-threads", "-1"), ("--max-len", "-1"), ("--max-len", "0"),
               ("--epochs", "0"), ("--epochs", "-1"), ("--epochs", "abc"), ("--lr", "nan"), ("--lr", "-1"),
               ("--modality-dropout", "1"), ("--stream-rate", "-inf"), ("--seed", "-1"), ("--cv", "1")]


@pytest.mark.parametrize("flag,value", TRAIN_FLAGS)
def test_train_flags(tiny, tmp_path, capsys, flag, value):
    data, _, config = tiny
    out = tmp_path / "run"
    line = refused(capsys, ["train", "--data", data, "--config", config, "--out", out, "--no-progress",
                            f"{flag}={value}"], flag, value)
    assert line.startswith("mcr train: error:") and not out.exists()


EXTRACT_FLAGS = [("--workers", "10000"), ("--workers", "0"), ("--retries", "-1"), ("--chunk-seconds", "-1"),
                 ("--chunk-seconds", "nan")]


@pytest.mark.parametrize("flag,value", EXTRACT_FLAGS)
def test_extract_flags(tmp_path, capsys, flag, value):
    (tmp_path / "videos").mkdir()
    refused(capsys, ["extract", tmp_path / "videos", "--store", tmp_path / "store", f"{flag}={value}"], flag, value)
    assert not (tmp_path / "store").exists()


PREDICT_FLAGS = [("--window", "1e-6"), ("--window", "0"), ("--window", "-1"), ("--window", "nan"),
                 ("--window", "inf"), ("--workers", "10000"), ("--max-utterance", "0"), ("--min-pause", "0")]


@pytest.mark.parametrize("flag,value", PREDICT_FLAGS)
def test_predict_flags(tiny, tmp_path, capsys, flag, value):
    _, run, _ = tiny
    out = tmp_path / "p.csv"
    refused(capsys, ["predict", tmp_path, "--model", run, "--out", out, f"{flag}={value}"], flag, value)
    assert not out.exists() and not Path(f"{out}.store").exists()


def test_report_flag(tiny, tmp_path, capsys):
    refused(capsys, ["report", tiny[1], "--layer=-1"], "--layer", "-1")


# ---------------------------------------------------------------------------------------------- mcr run TOML
RUN_CONFIG = {"extract": 'input = "videos"\nstore = "store"\n', "train": 'out = "run"\n'}
TOML_CASES = [
    ("train", "seeds = 18446744073709551615", "seeds"), ("train", "seeds = 0", "seeds"),
    ("train", 'epochs = "abc"', "epochs"), ("train", "batch_size = -1", "batch_size"), ("train", "lr = nan", "lr"),
    ("train", "max_len = 0", "max_len"), ("train.model", "n_layers = 1000000", "n_layers"),
    ("train.model", "d_model = 1000000", "d_model"), ("train.model", "d_model = 1024\nn_heads = 8\nn_layers = 8", "parameters"),
    ("extract", "workers = 10000", "workers"), ("predict", 'input = "v"\nout = "p.csv"\nwindow = 1e-6', "window"),
    ("evaluate", 'split = "nosuch"', "nosuch"), ("report", "layer = -1", "layer"),
]


def _run_config(folder: Path, section: str, line: str) -> Path:
    tables = dict(RUN_CONFIG)
    tables[section] = tables.get(section, "") + line + "\n"
    text = "".join(f"[{name}]\n{body}" for name, body in tables.items() if name != "train.model")
    text += f"[train.model]\n{tables['train.model']}" if "train.model" in tables else ""
    path = folder / "pipeline.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("section,line,named", TOML_CASES)
def test_run_config_values(tmp_path, capsys, section, line, named):
    path = _run_config(tmp_path, section, line)
    refused(capsys, ["run", path], str(path), named)
    assert not (tmp_path / "store").exists() and not (tmp_path / "stages.json").exists()


# ------------------------------------------------------------------------------------- mcr train --config files
CONFIG_FILES = [("bad.toml", 'epochs = "abc"\n', "epochs"), ("bad.toml", "batch_size = -1\n", "batch_size"),
                ("bad.toml", "[model]\nn_layers = 1000000\n", "model.n_layers"),
                ("bad.toml", "[train]\nmodality_dropout = 2\n", "modality_dropout"),
                ("bad.json", '{"model": [1, 2]}', "model"), ("bad.json", "null", "table"),
                ("bad.json", '{"epochs": 3', "JSON")]


@pytest.mark.parametrize("name,text,named", CONFIG_FILES)
def test_train_config_files(tiny, tmp_path, capsys, name, text, named):
    config = tmp_path / name
    config.write_text(text)
    refused(capsys, ["train", "--data", tiny[0], "--config", config, "--out", tmp_path / "run"], str(config), named)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- run directories
RUN_RECORDS = [("null", None), ("list train", lambda r: {**r, "train": [1, 2]}),
               ("list model", lambda r: {**r, "model": [1]}), ("a number", 5),
               ("negative batch", lambda r: {**r, "train": {**r["train"], "batch_size": -1}}),
               ("huge model", lambda r: {**r, "model": {**r["model"], "n_layers": 10**6}}), ("not JSON", "{")]


def _run_copy(run: Path, folder: Path, change) -> Path:
    copy = folder / "run"
    shutil.copytree(run, copy)
    record = json.loads((run / "config.json").read_text())
    text = change if isinstance(change, str) else json.dumps(change(record) if callable(change) else change)
    (copy / "config.json").write_text(text)
    return copy


@pytest.mark.parametrize("command", ["evaluate", "report", "train"])
@pytest.mark.parametrize("case,change", RUN_RECORDS, ids=[c for c, _ in RUN_RECORDS])
def test_run_directory_configs(tiny, tmp_path, capsys, command, case, change):
    data, run, config = tiny
    copy = _run_copy(run, tmp_path, change)
    argv = {"evaluate": ["evaluate", copy, "--data", data], "report": ["report", copy],
            "train": ["train", "--data", data, "--config", config, "--out", copy, "--no-progress"]}[command]
    capsys.readouterr()
    code = mcr([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and "Traceback" not in err[-1] and "internal error" not in err[-1], err
    assert str(copy / "config.json") in err[-1] or (command == "train" and "another configuration" in err[-1]), err
    assert not (copy / "report").exists() and not (copy / "eval-test.json").exists()


# --------------------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("change", [{"n_layers": 10**6}, {"d_model": 10**6}, {"embed_dropout": "x"}],
                         ids=["n_layers", "d_model", "dropout"])
def test_a_crafted_checkpoint_is_refused_before_any_memory_is_taken(tiny, tmp_path, capsys, change):
    """The checkpoint's model config (its SHA-256 recomputed, as an attacker would) is checked like any other."""
    data, run, _ = tiny
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    best = copy / "checkpoints" / "best.safetensors"
    with safe_open(str(best), "pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    metadata["model_config"] = json.dumps({**json.loads(metadata["model_config"]), **change})
    save_file(tensors, str(best), metadata=metadata)
    record = json.loads(best.with_suffix(".json").read_text())
    best.with_suffix(".json").write_text(json.dumps({**record, "sha256": sha256_file(best)}))
    refused(capsys, ["evaluate", copy, "--data", data], str(best), next(iter(change)))


# ------------------------------------------------------------------------------------ JSON that names its file
def test_a_broken_stage_record_names_its_file(tmp_path):
    from workflows.stages import StageRunner

    (tmp_path / "stages.json").write_text('{"extract": ')
    with pytest.raises(ValueError, match=r"stages\.json: \[run\] not readable JSON"):
        StageRunner(tmp_path)


def test_figures(capsys):
    """The time from each call to its error (printed with -s; docs/reliability.md)."""
    if TIMES:
        with capsys.disabled():
            print(f"\n{len(TIMES)} refusals timed: max {max(TIMES):.2f} s, median {sorted(TIMES)[len(TIMES) // 2]:.3f} s")
