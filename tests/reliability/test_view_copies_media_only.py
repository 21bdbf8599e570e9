"""Issue 17, security 3: `mcr view` copies (or links) into its output folder, which users publish, only files that
PyAV decodes as video or audio; a table whose video_path names a system file, a ../ path out of the table's folder
or text dressed as a video gets no copy, and the command and the page say which files were refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.workflows.test_viewer import write_video
from workflows.cli import main as mcr
from workflows.viewer import is_media

SECRET = "root:x:0:0:root:/root:/bin/bash\nSECRET-TOKEN-1234\n"


def _hostile_table(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A predictions CSV in tmp/work/ whose rows name a video and four files that are not media."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (home / ".ssh").mkdir(parents=True)
    files = {"passwd": tmp_path / "passwd", "key": home / ".ssh" / "id_rsa", "notes": home / "notes.txt",
             "fake": home / "fake.mp4"}
    for path in files.values():
        path.write_text(SECRET)
    named = {"passwd": str(files["passwd"]), "key": "../home/.ssh/id_rsa", "notes": "../home/notes.txt",
             "fake": "../home/fake.mp4", "etc": "/etc/passwd", "clip": str(write_video(tmp_path / "clip.webm", 2))}
    pd.DataFrame({"video_id": list(named), "video_path": list(named.values()), "segment_id": list(named),
                  "start": 0.0, "end": 1.0, "transcript": "x", "predicted_class": "happy"}).to_csv(
        work / "predictions.csv", index=False)
    return work / "predictions.csv", files


@pytest.mark.parametrize("link", [False, True], ids=["copy", "link"])
def test_view_copies_only_media(tmp_path, capsys, link):
    table, files = _hostile_table(tmp_path)
    out = tmp_path / "site"
    assert mcr(["view", str(table), "--out", str(out)] + (["--link"] if link else [])) == 0
    placed = [p for p in out.rglob("*") if p.is_file() or p.is_symlink()]
    media = [p for p in placed if p.name.startswith("video")]
    assert [p.parent.name for p in media] == ["clip"], placed
    for path in placed:
        assert "SECRET-TOKEN" not in path.read_text(errors="replace"), path
    err = capsys.readouterr().err
    for name in ("passwd", "key", "notes", "fake"):
        assert f"{files[name].name}: [view] refused" in err, err
        assert files[name].name in (out / name / "index.html").read_text()
    assert "/etc/passwd: [view] refused" in err


def test_is_media(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text(SECRET)  # ffmpeg's tty demuxer decodes text files as video
    fake = tmp_path / "fake.mp4"
    shutil.copyfile(text, fake)
    assert not is_media(text) and not is_media(fake) and not is_media(Path("/etc/passwd"))
    assert not is_media(tmp_path / "missing.mp4")
    assert is_media(write_video(tmp_path / "clip.webm", 1))
