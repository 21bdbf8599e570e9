"""The `mcr` command: subcommands with help, and `mcr inspect` on real and broken media."""
from __future__ import annotations

import json

import pytest

from tests.extractors.media_files import cremad_clips
from workflows.cli import COMMANDS, build_parser, main


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    assert set(parser._subparsers._group_actions[0].choices) == set(COMMANDS)
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert "usage: mcr " + name in capsys.readouterr().out


def test_inspect_json_on_a_real_clip(capsys):
    clip = cremad_clips()["HAP"]
    assert main(["inspect", str(clip), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"transcript", "words", "acoustic_frames", "acoustic_dim", "visual_frames", "face_ratio",
            "seconds"} <= set(summary)
    assert "forget" in summary["transcript"].lower()
    assert abs(summary["acoustic_frames"] - summary["duration"] / 0.01) <= 1
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
