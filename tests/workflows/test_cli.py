"""The `mcr` command: subcommands with help, `mcr inspect` on real and broken media, and the one error handler."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import StageError, one_line
from tests.extractors.media_files import cremad_clips
from workflows.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def mcr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``mcr ARGS`` in a fresh interpreter, as a user runs it."""
    environment = {k: v for k, v in os.environ.items() if k != "MCR_DEBUG"} | (env or {})
    return subprocess.run([sys.executable, "-m", "workflows.cli", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *expected: str) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"mcr {command}: error: "), result.stderr
    assert "Traceback" not in result.stderr and all(text in lines[0] for text in expected), lines[0]
    return lines[0]


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    assert set(parser._subparsers._group_actions[0].choices) == set(COMMANDS)
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert "usage: mcr " + name in capsys.readouterr().out


def test_inspect_and_extract_default_to_the_one_dict_of_default_extractors():
    from extractors.base import DEFAULT_EXTRACTORS

    inspect = build_parser().parse_args(["inspect", "clip.mp4"])
    extract = build_parser().parse_args(["extract", "videos", "--store", "store"])
    assert DEFAULT_EXTRACTORS["acoustic"] == "whisper-encoder"  # issue 19: the stream MCR is best on (RAVDESS)
    for modality in ("language", "acoustic", "visual"):
        assert getattr(inspect, modality) == getattr(extract, modality) == DEFAULT_EXTRACTORS[modality]
    assert extract.voice == DEFAULT_EXTRACTORS["voice"]


@pytest.mark.slow
def test_inspect_json_on_a_real_clip(capsys):
    clip = cremad_clips()["HAP"]
    assert main(["inspect", str(clip), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"transcript", "words", "acoustic_frames", "acoustic_dim", "visual_frames", "face_ratio",
            "seconds"} <= set(summary)
    assert "forget" in summary["transcript"].lower()
    # the default acoustic stream: whisper base's encoder states (512), 25 rows a second of speech
    assert summary["acoustic_dim"] == 512 and 0 < summary["acoustic_frames"] <= summary["duration"] / 0.04 + 1
    assert summary["face_ratio"] >= 0.9 and summary["visual_frames"] > 10
    assert set(summary["seconds"]) >= {"decode", "language", "acoustic", "visual", "total"}


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50])
def test_inspect_on_a_broken_file_names_the_file_and_the_stage(tmp_path, capsys, content):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "[decode]" in err and "Traceback" not in err


def test_inspect_on_a_missing_path(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.mp4")]) == 2
    assert "nope.mp4" in capsys.readouterr().err


def test_a_missing_file_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nowhere"
    result = mcr("train", "--data", str(missing), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "train", str(missing))


def test_a_bad_manifest_is_one_line_naming_the_file(tmp_path):
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("video_id\nx\n")
    result = mcr("extract", str(manifest), "--store", str(tmp_path / "store"))
    assert_one_line_error(result, "extract", str(manifest), "'path' column")


@pytest.mark.slow  # three subprocesses importing torch
@pytest.mark.parametrize("where", ["before", "after", "environment"])
def test_debug_shows_the_traceback(tmp_path, where):
    args = ["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]
    result = mcr(*{"before": ["--debug", *args], "after": [*args, "--debug"], "environment": args}[where],
                 env={"MCR_DEBUG": "1"} if where == "environment" else None)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr and "FileNotFoundError" in result.stderr


def _failing(error: BaseException):
    def run(args):
        raise error
    return run


@pytest.mark.parametrize("error, code", [
    (ValueError("a.csv: [load] bad row\nthe row was: 1,2,3\nhint: quote the path"), 2),
    (StageError("v.mp4", "decode", "corrupt"), 2),
    (PermissionError(13, "Permission denied", "/store"), 2),
    (KeyError("unknown preset 'x'; known: ['mosi']"), 2),
    (KeyError("x"), 1),
    (ZeroDivisionError("division by zero"), 1),
])
def test_errors_are_classified_and_folded_to_one_line(monkeypatch, capsys, error, code):
    import workflows.commands.report as report

    monkeypatch.delenv("MCR_DEBUG", raising=False)
    monkeypatch.setattr(report, "run", _failing(error))
    assert main(["report", "somewhere"]) == code
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("mcr report: error: ")
    assert ("internal error; rerun with --debug" in line) == (code == 1)
    if code == 1:
        assert type(error).__name__ in line
    with pytest.raises(type(error)):
        main(["--debug", "report", "somewhere"])


def test_one_line_keeps_the_first_line_and_the_hint():
    error = ValueError("a.csv: [load] bad row\nthe row was: 1,2,3\nhint: quote the path")
    assert one_line(error) == "a.csv: [load] bad row (hint: quote the path)"
    noted = OSError("b.pkl: [load] unreadable")
    noted.add_note("Hint: pass --trust-pickle")
    assert one_line(noted) == "b.pkl: [load] unreadable (Hint: pass --trust-pickle)"
    assert one_line(KeyError("unknown preset 'x'")) == "unknown preset 'x'"
    assert one_line(RuntimeError()) == "RuntimeError"


def test_an_unreachable_scheduler_is_a_user_error(monkeypatch, capsys):
    import workflows.commands.report as report

    def connect(args):
        from distributed import Client

        Client("tcp://127.0.0.1:1", timeout=1)

    monkeypatch.delenv("MCR_DEBUG", raising=False)
    monkeypatch.setattr(report, "run", connect)
    assert main(["report", "somewhere"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "tcp://127.0.0.1:1" in line and "internal error" not in line


def test_keyboard_interrupt_exits_130(monkeypatch, capsys):
    import workflows.commands.report as report

    monkeypatch.setattr(report, "run", _failing(KeyboardInterrupt()))
    assert main(["report", "somewhere"]) == 130


def test_the_program_exits_with_mains_code_and_every_line_it_printed():
    """``entry`` ends the process without the interpreter's teardown: what was printed into a pipe (block-buffered)
    still arrives whole, and the exit code is main's."""
    code = ("import sys; from workflows import cli\n"
            "def main():\n    [print(f'line {i}') for i in range(20000)]; print('last', file=sys.stderr)\n"
            "    return 3\n"
            "cli.main = main; cli.entry()")
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=buffered, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == [f"line {i}" for i in range(20000)] and done.stderr == "last\n"
