"""Up to date means the file says so: a config-changing run SIGKILLed at each write of the store, then a rerun with
the old config recomputes exactly the streams the killed run had rewritten, and the store ends as an uninterrupted
old-config run leaves it. Also: audio-only files and the files a folder scan passes over.

The killed runs are subprocesses (``kill_driver.py``, a thread-worker Dask client, so the kill lands at an exact
write); the reruns use an in-process client. Acoustic features only, on two short generated WAV files.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.corpus import scan_folder
from pipeline.store import FeatureStore, feature_matrix
from workflows.extract import build_extractors, extract_corpus

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
ACOUSTIC = {"language": None, "acoustic": "librosa", "visual": None, "voice": None}  # librosa's stream alone
AUDIO_VISUAL = {"language": None, "acoustic": "librosa", "voice": None}
NEW_HOP = 0.02  # the default is 0.01: the killed run halves the acoustic rows


def write_wav(path: Path, seconds: float, frequency: float = 220.0, sample_rate: int = 16000) -> Path:
    """A mono 16-bit tone."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    samples = (0.3 * np.sin(2 * np.pi * frequency * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def client():
    import distributed

    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kills") / "audio"
    folder.mkdir()
    write_wav(folder / "a.wav", 1.5, 220.0)
    write_wav(folder / "b.wav", 1.0, 330.0)
    return folder


def _extract(corpus: Path, store: FeatureStore, client, hop: float | None = None):
    options = {"acoustic": {"hop": hop}} if hop is not None else None
    return extract_corpus(scan_folder(corpus), store, client=client, progress=False,
                          extractors=build_extractors(ACOUSTIC, options))


@pytest.fixture(scope="module")
def base(tmp_path_factory, client, corpus) -> FeatureStore:
    """An uninterrupted run with the default (old) config: the store every rerun must end as."""
    store = FeatureStore(tmp_path_factory.mktemp("base") / "store")
    summary = _extract(corpus, store, client)
    assert (summary.done, summary.failed, summary.computed) == (2, 0, {"acoustic": 2})
    return store


def _assert_same_store(store: FeatureStore, reference: FeatureStore) -> None:
    cols = ["video_id", "status", "sha256", "size", "duration", "error_stage", "acoustic_extractor",
            "acoustic_config_hash", "acoustic_rows", "models"]
    got, want = (s.videos()[cols].sort_values("video_id").reset_index(drop=True) for s in (store, reference))
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    pd.testing.assert_frame_equal(store.segments(), reference.segments())
    for vid in reference.stream_video_ids("acoustic"):
        a, b = store.stream_info("acoustic", vid), reference.stream_info("acoustic", vid)
        assert a.rows == b.rows == got.set_index("video_id").loc[vid, "acoustic_rows"], vid
        assert {k: a.metadata[k] for k in ("config_hash", "source_sha256", "rows")} == {
            k: b.metadata[k] for k in ("config_hash", "source_sha256", "rows")}
    ta, tb = store.read_stream("acoustic"), reference.read_stream("acoustic")
    assert ta.column("video_id").to_pylist() == tb.column("video_id").to_pylist()
    np.testing.assert_array_equal(ta.column("time").to_numpy(), tb.column("time").to_numpy())
    np.testing.assert_allclose(feature_matrix(ta), feature_matrix(tb), rtol=1e-5, atol=1e-6)
    leftovers = [p for p in Path(store.root).rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def _killed_run(corpus: Path, store: FeatureStore, log: Path, kind: str, n: int, when: str,
                hop: float | None) -> list[tuple[str, str, int, str]]:
    """Run the driver until it kills itself; the writes it logged: (done|tmp, kind, number, path)."""
    args = [sys.executable, "-m", "tests.workflows.extract.kill_driver", str(corpus), store.url, str(log), kind, str(n),
            when] + ([str(hop)] if hop is not None else [])
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, f"not killed at {kind} #{n} {when} (rc {proc.returncode}):\n{proc.stdout}" \
                                  f"\n{proc.stderr[-3000:]}"
    lines = [line.split(" ", 3) for line in log.read_text().splitlines()]
    return [(status, k, int(i), path) for status, k, i, path in lines]


def _new_hop_files(store: FeatureStore) -> set[str]:
    """Videos whose acoustic file the killed run replaced, read with pyarrow alone (not the code under test)."""
    found = set()
    for folder in Path(store.root, "acoustic").iterdir():
        meta = pq.read_schema(folder / "part.parquet").metadata
        if json.loads(meta[b"frame_shift"]) == NEW_HOP:
            found.add(folder.name.removeprefix("video_id="))
    return found


# Every write of a config-changing run over 2 videos, in order: segments.parquet, then per video its stream file and
# its row as a part of the videos journal (the client records a video's row while the worker computes the next one,
# so journal #1 may come after stream #2), then videos.parquet once, when the journal is folded into it at the end;
# killed after the rename ("after") or between the temporary file and the rename ("before").
# The last item: how many stream files the killed run can have replaced by then.
KILL_POINTS = [("segments", 1, "after", {0}), ("stream", 1, "before", {0}), ("stream", 1, "after", {1}),
               ("journal", 1, "before", {1, 2}), ("journal", 1, "after", {1, 2}), ("stream", 2, "before", {1}),
               ("stream", 2, "after", {2}), ("journal", 2, "before", {2}), ("journal", 2, "after", {2}),
               ("videos", 1, "before", {2}), ("videos", 1, "after", {2})]


@pytest.mark.parametrize("kind, n, when, replaced", KILL_POINTS, ids=[f"{k}{n}-{w}" for k, n, w, _ in KILL_POINTS])
def test_kill_during_a_config_change_then_rerun_with_the_old_config(tmp_path, client, corpus, base, kind, n, when,
                                                                     replaced):
    store = FeatureStore(tmp_path / "store")
    shutil.copytree(base.root, store.root)
    writes = _killed_run(corpus, store, tmp_path / "writes.log", kind, n, when, NEW_HOP)
    assert ("tmp" if when == "before" else "done", kind, n) in [w[:3] for w in writes], writes
    rewritten = _new_hop_files(store)  # the file holds hop-0.02 rows, whatever videos.parquet still says
    assert len(rewritten) in replaced, (rewritten, writes)
    old_rows = base.videos().set_index("video_id")
    for vid in rewritten:
        assert store.stream_info("acoustic", vid).rows < old_rows.loc[vid, "acoustic_rows"]
    if (kind, n, when) == ("stream", 1, "after"):  # the case: the row still vouches for the old file
        (vid,) = rewritten
        row = store.videos().set_index("video_id").loc[vid]
        assert row["acoustic_config_hash"] == old_rows.loc[vid, "acoustic_config_hash"]
        assert row["acoustic_config_hash"] != store.stream_info("acoustic", vid).config_hash
    if when == "before":  # the killed write left its temporary file
        assert [p for p in Path(store.root).rglob("*") if p.name.endswith(".tmp")]

    rerun = _extract(corpus, store, client)  # the old config again
    assert rerun.failed == 0, rerun.failures
    assert rerun.computed == {"acoustic": len(rewritten)}, (rewritten, writes)
    assert (rerun.done, rerun.skipped) == (len(rewritten), 2 - len(rewritten))
    _assert_same_store(store, base)


def test_kill_after_a_first_write_loses_nothing_and_recomputes_nothing_twice(tmp_path, client, corpus, base):
    """A fresh store killed after the first stream file, before any row: the file is current, so the rerun
    computes only the other video and derives the first one's row from its file."""
    store = FeatureStore(tmp_path / "store")
    writes = _killed_run(corpus, store, tmp_path / "writes.log", "stream", 1, "after", None)
    assert not store.videos().shape[0] and [w[1] for w in writes] == ["segments", "stream"]
    rerun = _extract(corpus, store, client)
    assert rerun.computed == {"acoustic": 1} and (rerun.done, rerun.failed) == (2, 0)
    _assert_same_store(store, base)


def test_audio_files_give_acoustic_and_an_empty_visual_stream_and_skips_are_listed(tmp_path, client):
    from tests.extractors.media_files import write_media

    folder = tmp_path / "in"
    (folder / "talks").mkdir(parents=True)
    (folder / ".cache").mkdir()
    write_wav(folder / "talks" / "one.wav", 1.0)
    write_media(folder / "two.m4a", video=False, seconds=1.0)
    (folder / "notes.txt").write_text("not media")
    (folder / ".cache" / "x.mp4").write_bytes(b"x")
    (folder / ".DS_Store").write_bytes(b"x")
    store = FeatureStore(tmp_path / "store")
    summary = extract_corpus(scan_folder(folder), store, client=client, progress=False,
                             extractors=build_extractors(AUDIO_VISUAL))
    assert (summary.done, summary.failed) == (2, 0), summary.failures
    assert {(Path(s["path"]).name, s["reason"]) for s in summary.skipped_files} == {
        (".cache", "hidden folder (not scanned)"), (".DS_Store", "hidden file"),
        ("notes.txt", "not a video or audio file (.txt)")}
    videos = store.videos().set_index("video_id")
    assert list(videos.index) == ["talks__one", "two"] and (videos["status"] == "done").all()
    assert (videos["acoustic_rows"] > 90).all() and (videos["visual_rows"] == 0).all()
    assert videos["fps"].isna().all()
    for vid in videos.index:
        schema = pq.read_schema(store.stream_path("visual", vid))
        assert {"time", "face", "features"} <= set(schema.names) and store.stream_info("visual", vid).rows == 0
    # a rerun: both streams of both files are current, nothing recomputed
    again = extract_corpus(scan_folder(folder), store, client=client, progress=False,
                           extractors=build_extractors(AUDIO_VISUAL))
    assert (again.skipped, again.computed) == (2, {"acoustic": 0, "visual": 0})


def test_ids_are_checked_before_any_work(tmp_path):
    from pipeline.manifest import VideoSource

    store = FeatureStore(tmp_path / "store")
    bad = [VideoSource("ok", str(tmp_path / "ok.wav")), VideoSource("x" * 101, str(tmp_path / "long.wav"))]
    with pytest.raises(ValueError, match="long.wav.*at most 100"):  # before asking for a client or touching files
        extract_corpus(bad, store, client=None, extractors=build_extractors(ACOUSTIC), progress=False)
    assert not os.path.exists(store.root)


def test_a_rerun_trusts_size_and_mtime_and_hashes_only_touched_files(tmp_path, client, corpus, base, monkeypatch):
    import workflows.extract.tasks

    store = FeatureStore(tmp_path / "store")
    shutil.copytree(base.root, store.root)
    hashed = []
    real = workflows.extract.tasks.sha256_file
    monkeypatch.setattr(workflows.extract.tasks, "sha256_file", lambda path, **k: hashed.append(path) or real(path))
    again = _extract(corpus, store, client)
    assert (again.skipped, again.computed, hashed) == (2, {"acoustic": 0}, [])
    assert not (Path(store.root) / "_journal").exists(), "unchanged rows are not written again"
    os.utime(corpus / "a.wav")  # touched, same content: hashed again, nothing recomputed
    touched = _extract(corpus, store, client)
    assert (touched.skipped, touched.computed) == (2, {"acoustic": 0}) and [Path(p).name for p in hashed] == ["a.wav"]
    assert store.videos().set_index("video_id").loc["a", "mtime_ns"] == (corpus / "a.wav").stat().st_mtime_ns
    _assert_same_store(store, base)
