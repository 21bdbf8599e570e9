"""Fault suite: ``mcr extract`` on a folder of malformed and awkward media, made here with ffmpeg from CREMA-D.

The kinds (see :mod:`tests.reliability.media_kinds`): text as video, zero bytes, truncated (10%, 50%, 90%, and an
MP4 cut before its index), bit flips, no audio, audio only, no face, 4K, rotation (display matrix) and a sideways
picture, the data stream first (the original FLV), a unicode file name and a 1-minute video.

The real command runs once on the whole folder, as a user runs it (a subprocess, one LocalCluster worker), then a
second time on the same store. What must hold, per file: the batch finishes (exit 0 or 1, no traceback, no hang);
a good video is ``done`` with streams that cover its duration; a broken one is ``failed`` with a stage and a message
that names what is wrong; the rerun skips every done video and loses or duplicates no row.

``pytest tests/reliability/test_malformed_media.py -s`` prints the figures table of docs/reliability.md.
Skips without ffmpeg on PATH (``.ci/run`` installs it) or without ../shared.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from pipeline.corpus import scan_folder, video_id_from_path
from pipeline.store import PARTITIONING
from tests.reliability.media_kinds import CASES, REPO, Case, cremad_clips, ffmpeg_available, write_corpus

pytestmark = pytest.mark.slow

MODALITIES = ("language", "acoustic", "visual", "voice")  # the streams `mcr extract` writes by default
STAGES = {"read", "decode", "language", "acoustic", "visual", "voice", "worker"}
RUN_TIMEOUT = 900  # s for one `mcr extract` of the folder; past it the batch counts as hung
BY_FILE = {case.file: case for case in CASES}


def _requirements() -> None:
    if len(cremad_clips()) < 6:
        pytest.skip("the shared CREMA-D clips (../shared/data/cremad) are absent")
    if not ffmpeg_available():
        pytest.skip("ffmpeg is not on PATH (.ci/run installs Debian's ffmpeg)")


def _extract(folder: Path, store: Path) -> dict:
    """One ``mcr extract`` as a subprocess: exit code, output, wall time, whether it hung."""
    cmd = [sys.executable, "-m", "workflows.cli", "extract", str(folder), "--store", str(store), "--workers", "1",
           "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k != "MCR_DEBUG"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        hung = False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Dask workers: a session of their own
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        hung = True
    return {"rc": proc.returncode, "stdout": out, "stderr": err, "seconds": time.perf_counter() - started,
            "hung": hung}


def _streams(store: Path) -> dict[str, pd.DataFrame]:
    """Every stream's rows (no feature vectors), video_id as a string column."""
    columns = {"language": ["start", "end", "word"], "acoustic": ["time"], "visual": ["time", "face"],
               "voice": ["time"]}
    frames = {}
    for m in MODALITIES:
        if (store / m).is_dir():
            table = ds.dataset(store / m, format="parquet", partitioning=PARTITIONING).to_table(
                columns=["video_id", *columns[m]])
            frames[m] = table.to_pandas()
        else:
            frames[m] = pd.DataFrame(columns=["video_id", *columns[m]])
        frames[m]["video_id"] = frames[m]["video_id"].astype(str)
    return frames


def _stream_mtimes(store: Path) -> dict[tuple[str, str], int]:
    return {(m, p.parent.name.removeprefix("video_id=")): p.stat().st_mtime_ns
            for m in MODALITIES if (store / m).is_dir() for p in (store / m).glob("video_id=*/part.parquet")}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """The corpus made, extracted once, then extracted again: everything the tests look at."""
    _requirements()
    root = tmp_path_factory.mktemp("reliability")
    folder, store = root / "media", root / "store"
    notes = write_corpus(folder)
    ids = {Path(source.path).name: source.video_id for source in scan_folder(folder)}
    first = _extract(folder, store)
    videos = pd.read_parquet(store / "videos.parquet") if (store / "videos.parquet").exists() else pd.DataFrame()
    streams, mtimes = _streams(store), _stream_mtimes(store)
    second = _extract(folder, store)
    videos2 = pd.read_parquet(store / "videos.parquet") if (store / "videos.parquet").exists() else pd.DataFrame()
    return {"folder": folder, "store": store, "notes": notes, "ids": ids, "runs": (first, second), "videos": videos,
            "videos2": videos2, "streams": streams, "streams2": _streams(store), "mtimes": mtimes,
            "mtimes2": _stream_mtimes(store)}


def _id(suite, file: str) -> str:
    """The id the folder scan gives ``file`` (``audio_only.wav`` and ``.m4a`` keep their suffixes)."""
    return suite["ids"].get(file) or video_id_from_path(file)


def _row(suite, case: Case) -> pd.Series:
    if not (suite["folder"] / case.file).exists():
        pytest.skip(f"{case.file} was not made: {suite['notes'].get(case.file)}")
    videos = suite["videos"]
    rows = videos[videos["video_id"] == _id(suite, case.file)] if len(videos) else videos
    hint = (" (audio-only files must be picked up by the folder scan and extracted: language and acoustic rows, "
            "no visual rows)" if not case.video else "")
    assert len(rows) == 1, f"{case.file} ({case.kind}): {len(rows)} rows for id {_id(suite, case.file)!r} in " \
                           f"videos.parquet, expected 1{hint}"
    return rows.iloc[0]


def _rows_of(suite, modality: str, video_id: str, which: str = "streams") -> pd.DataFrame:
    frame = suite[which][modality]
    return frame[frame["video_id"] == video_id]


def _check_done(suite, case: Case, row: pd.Series, *, coverage: bool = True) -> None:
    """A done video: each stream's rows as videos.parquet says; with ``coverage``, streams that span it."""
    vid, duration = row["video_id"], float(row["duration"])
    assert duration > 0.5, f"{case.file}: duration {duration}"
    for m in MODALITIES:
        rows = _rows_of(suite, m, vid)
        recorded = row.get(f"{m}_rows")
        assert recorded is not None and not pd.isna(recorded), f"{case.file}: {m}_rows not recorded"
        assert len(rows) == int(recorded), f"{case.file}: {m} has {len(rows)} rows, videos.parquet says {recorded}"
    if not coverage:
        return
    words, frames, images, voice = (_rows_of(suite, m, vid) for m in MODALITIES)
    if case.audio:
        assert len(words) > 0, f"{case.file}: no word recognised in speech"
        assert words["start"].min() >= 0 and words["end"].max() <= duration + 0.05, f"{case.file}: words outside"
        assert len(frames) > 0, f"{case.file}: no acoustic rows for its speech"  # whisper's states: speech only
        assert voice["time"].min() <= 0.05 and voice["time"].max() >= duration - 0.05, \
            f"{case.file}: the voice stream spans {voice['time'].min()}..{voice['time'].max()} of {duration:.2f} s"
    else:
        assert len(words) == len(frames) == len(voice) == 0, f"{case.file}: audio streams without an audio track"
    if case.video:
        assert images["time"].min() <= 0.2 and images["time"].max() >= duration - 0.3, \
            f"{case.file}: visual frames span {images['time'].min()}..{images['time'].max()} of {duration:.2f} s"
    else:
        assert len(images) == 0, f"{case.file}: {len(images)} visual rows without a video track"


# ------------------------------------------------------------------------------------------------- the batch
def test_the_batch_finishes_without_a_crash(suite):
    for n, run in enumerate(suite["runs"], start=1):
        output = run["stdout"] + run["stderr"]
        assert not run["hung"], f"run {n}: mcr extract still running after {RUN_TIMEOUT} s\n{output[-3000:]}"
        assert "Traceback" not in output and "internal error" not in output, f"run {n}:\n{output[-3000:]}"
        assert run["rc"] in (0, 1), f"run {n}: exit code {run['rc']}\n{output[-3000:]}"
    failed = suite["videos"]["status"].eq("failed").sum()
    assert suite["runs"][0]["rc"] == (1 if failed else 0)
    listed = suite["runs"][0]["stdout"]  # the failures are listed at the end, one line each
    for vid in suite["videos"].loc[suite["videos"]["status"] == "failed", "video_id"]:
        assert re.search(rf"^{re.escape(vid)}\s", listed, re.M), f"{vid} is not in the failures listed"


@pytest.mark.parametrize("file", [c.file for c in CASES if c.expect == "done"])
def test_a_good_video_is_done_with_streams_covering_it(suite, file):
    case = BY_FILE[file]
    row = _row(suite, case)
    assert row["status"] == "done", f"{file} ({case.kind}): {row['status']} at {row['error_stage']}: " \
                                    f"{row['error_message']}"
    assert pd.isna(row["error_stage"]) and pd.isna(row["error_message"])
    _check_done(suite, case, row)


def test_the_picture_is_turned_upright_and_the_long_video_is_whole(suite):
    visual, language = suite["streams"]["visual"], suite["streams"]["language"]

    def faces(file):
        rows = visual[visual["video_id"] == _id(suite, file)]
        return rows["face"].mean() if len(rows) else math.nan

    if (suite["folder"] / "rotated.mp4").exists():
        assert faces("rotated.mp4") >= 0.8 * faces("data_stream_first.flv") > 0, "rotation not honoured"
    assert faces("no_face.mp4") == 0, "a face found in black frames"
    videos = suite["videos"].set_index("video_id")
    assert videos.loc[_id(suite, "long_1min.mp4"), "duration"] == pytest.approx(60, abs=1)
    assert videos.loc[_id(suite, "uhd_4k.mp4"), "duration"] == pytest.approx(1, abs=0.1)
    starts = language.loc[language["video_id"] == _id(suite, "long_1min.mp4"), "start"]
    # a sentence every 7.5 s: words in each quarter of the minute, in both chunks, not only in whisper's first window
    assert sorted(set((starts // 15).astype(int))) == [0, 1, 2, 3], sorted(starts)


@pytest.mark.parametrize("file", [c.file for c in CASES if c.expect == "failed"])
def test_a_broken_file_fails_clearly_and_the_batch_goes_on(suite, file):
    case = BY_FILE[file]
    row = _row(suite, case)
    assert row["status"] == "failed", f"{file} ({case.kind}) was {row['status']}"
    assert row["error_stage"] in STAGES, row["error_stage"]
    message = row["error_message"]
    assert isinstance(message, str) and message.strip() and "\n" not in message, repr(message)
    assert re.search(case.cause, message, re.I), f"{file}: the message does not say what is wrong: {message!r}"
    assert "Traceback" not in message and not message.startswith(("MemoryError", "_ArrayMemoryError")), message


@pytest.mark.parametrize("file", [c.file for c in CASES if c.expect == "either"])
def test_a_damaged_file_is_done_or_fails_clearly(suite, file):
    case = BY_FILE[file]
    row = _row(suite, case)
    assert row["status"] in ("done", "failed"), row["status"]
    if row["status"] == "failed":
        assert row["error_stage"] in STAGES and isinstance(row["error_message"], str) and row["error_message"]
        assert "Memory" not in row["error_message"], row["error_message"]
    else:  # what was decoded is extracted whole (a bit flip may blank a stretch: rows consistent, no coverage)
        _check_done(suite, case, row, coverage=file.startswith("truncated"))


# ------------------------------------------------------------------------------------------------- the rerun
def test_the_rerun_skips_every_done_video_and_loses_no_row(suite):
    before, after = suite["videos"], suite["videos2"]
    assert sorted(before["video_id"]) == sorted(after["video_id"]) and after["video_id"].is_unique
    done = set(before.loc[before["status"] == "done", "video_id"])
    summary = re.search(r"(\d+) extracted, (\d+) up to date", suite["runs"][1]["stdout"])
    assert summary and (int(summary[1]), int(summary[2])) == (0, len(done)), suite["runs"][1]["stdout"]
    merged = before.merge(after, on="video_id", suffixes=("", "_2"))
    for col in ("status", "sha256", "updated", *(f"{m}_rows" for m in MODALITIES)):
        a, b = merged.loc[merged["video_id"].isin(done), col], merged.loc[merged["video_id"].isin(done), f"{col}_2"]
        assert a.tolist() == b.tolist(), f"{col} changed on the rerun"
    # no stream file of a done video rewritten; none appeared or vanished
    assert suite["mtimes"] == suite["mtimes2"]
    for m in MODALITIES:
        one, two = suite["streams"][m], suite["streams2"][m]
        assert one.groupby("video_id").size().to_dict() == two.groupby("video_id").size().to_dict(), m
        key = ["video_id", "time"] if m != "language" else ["video_id", "start", "word"]
        assert not two.duplicated(key).any(), f"{m}: duplicated rows after the rerun"


def _figures(suite) -> tuple[list[dict], dict]:
    videos = suite["videos"].set_index("video_id") if len(suite["videos"]) else pd.DataFrame()
    table = []
    for case in CASES:
        vid = _id(suite, case.file)
        row = videos.loc[vid] if vid in getattr(videos, "index", []) else None
        counts = {m: int((suite["streams"][m]["video_id"] == vid).sum()) for m in MODALITIES}
        table.append({"file": case.file, "kind": case.kind, "expect": case.expect,
                      "status": "(not made)" if not (suite["folder"] / case.file).exists() else
                      ("(no row)" if row is None else row["status"]),
                      "stage": "" if row is None or pd.isna(row["error_stage"]) else row["error_stage"],
                      "message": "" if row is None or pd.isna(row["error_message"]) else row["error_message"],
                      "duration": None if row is None or pd.isna(row["duration"]) else float(row["duration"]),
                      "seconds": None if row is None else float(row["seconds"]), **counts})
    first, second = suite["runs"]
    crashes = sum(r["hung"] or r["rc"] not in (0, 1) or "Traceback" in r["stdout"] + r["stderr"]
                  for r in (first, second))
    before = {m: suite["streams"][m].groupby("video_id").size() for m in MODALITIES}
    after = {m: suite["streams2"][m].groupby("video_id").size() for m in MODALITIES}
    diff = {m: after[m].sub(before[m], fill_value=0) for m in MODALITIES}
    good = [t for t in table if t["expect"] == "done"]
    totals = {
        "inputs tried": len(table),
        "crashes (traceback, bad exit code or hung batch)": crashes,
        "clear errors (failed with a stage and a message)": sum(t["status"] == "failed" and bool(t["stage"])
                                                               and bool(t["message"]) for t in table),
        "good videos done": f"{sum(t['status'] == 'done' for t in good)} of {len(good)}",
        "damaged files done anyway": f"{sum(t['status'] == 'done' for t in table if t['expect'] == 'either')} of "
                                     f"{sum(t['expect'] == 'either' for t in table)}",
        "rows lost on the rerun": int(sum(-d[d < 0].sum() for d in diff.values())),
        "rows duplicated on the rerun": int(sum(d[d > 0].sum() for d in diff.values())),
        "first run": f"exit {first['rc']}, {first['seconds']:.0f} s",
        "rerun": f"exit {second['rc']}, {second['seconds']:.0f} s",
    }
    return table, totals


def test_figures(suite):
    """Prints the figures of docs/reliability.md (run with -s); asserts only that they add up."""
    table, totals = _figures(suite)
    print("\n| file | kind | expected | status | stage | message | duration (s) | words | acoustic | visual | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for t in table:
        message = t["message"].replace(str(suite["folder"]) + os.sep, "").replace("|", "/")
        message = message[:70] + "…" if len(message) > 70 else message
        duration = "" if t["duration"] is None else f"{t['duration']:.2f}"
        seconds = "" if t["seconds"] is None else f"{t['seconds']:.1f}"
        print(f"| `{t['file']}` | {t['kind']} | {t['expect']} | {t['status']} | {t['stage']} | {message} | "
              f"{duration} | {t['language']} | {t['acoustic']} | {t['visual']} | {seconds} |")
    print()
    for key, value in totals.items():
        print(f"| {key} | {value} |")
    print("\n" + json.dumps(suite["notes"], ensure_ascii=False, indent=1))
    assert totals["inputs tried"] == len(CASES)


# ------------------------------------------------------------------------------- one flip in a timestamp
FLIP = ("1001_DFA_ANG_XX.flv", 157156, 5)  # byte, bit: a video packet's timestamp jumps 2**29 ms (6.2 days) ahead
_DECODE = """
import resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from extractors.media import decode
print("imported", flush=True)
try:
    media = decode(sys.argv[1])
except BaseException as error:
    print(f"{type(error).__module__}.{type(error).__qualname__}")
    print(str(error).splitlines()[0] if str(error) else "")
else:
    print("decoded")
    print(media.duration)
"""


def test_a_bit_flip_in_a_timestamp_is_a_clear_error(tmp_path):
    """A single flipped bit: decode must say the timestamps are broken (MediaError), not run out of memory.

    Run in a subprocess with a 6 GiB address-space limit, so a machine with lots of memory is not filled.
    """
    import av

    clips = cremad_clips()
    if len(clips) < 6:
        pytest.skip("the shared CREMA-D clips (../shared/data/cremad) are absent")
    name, byte, bit = FLIP
    data = bytearray((clips["ANG"].parent / name).read_bytes())
    data[byte] ^= 1 << bit
    path = tmp_path / "one_bit_flipped.flv"
    path.write_bytes(bytes(data))
    with av.open(str(path)) as container:
        latest = max(float(p.pts * p.time_base) for p in container.demux() if p.pts is not None)
    if latest < 1000:
        pytest.skip(f"the flip no longer hits a timestamp of {name} (latest packet at {latest:.1f} s)")
    done = subprocess.run([sys.executable, "-c", _DECODE, str(path), str(6 << 30)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    lines = done.stdout.splitlines()
    if not lines or lines[0] != "imported":
        raise RuntimeError(f"the decoder could not be imported under the memory limit: {done.stderr[-2000:]}")
    assert lines[1:2] == ["pipeline.errors.MediaError"], (lines, done.stderr[-500:])
    assert str(path) in lines[2] and "[decode]" in lines[2], lines[2]
