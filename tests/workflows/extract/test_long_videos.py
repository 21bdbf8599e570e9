"""Long videos in chunks: cut in silences, merged into the store's layout, resumed chunk by chunk, spread over
workers, and with the words of the video's parts transcribed one by one.

The video is made by joining the shared CREMA-D clips with 1.5 s of silence between them (about 50 s); chunks of
15 s make three or four of them.
"""
from __future__ import annotations

import re
from pathlib import Path

import jiwer
import numpy as np
import pytest

from extractors.media import decode
from pipeline.manifest import VideoSource
from pipeline.store import FeatureStore, feature_matrix
from tests.extractors.media_files import cremad_clips
from tests.workflows.joined_video import join_clips
from workflows.extract.chunks import ChunkConfig
from workflows.extract import ExtractorSpec, build_extractors, extract_corpus
from workflows.extract.tasks import extract_chunk, extract_video, prepare_video

pytestmark = pytest.mark.slow

CHUNKING = ChunkConfig(seconds=8.0)
OPTIONS = {"fps": 10.0}
AV = {"language": None, "acoustic": "librosa"}  # the frame streams: librosa, MediaPipe, the voice


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    clips = cremad_clips()
    spans: list[tuple[float, float]] = []
    path = tmp_path_factory.mktemp("long") / "joined.mp4"
    join_clips([clips[c] for c in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")], path, seconds=30.0, spans=spans)
    return path, spans


def _specs(names: dict, chunking: ChunkConfig | None) -> tuple[ExtractorSpec, ...]:
    return tuple(ExtractorSpec.of(e, chunking) for e in build_extractors(names))


def acoustic_names(store: FeatureStore) -> list[str]:
    import json

    return json.loads(store.stream_metadata("acoustic")["feature_names"])


def _words(table) -> str:
    return " ".join(w for w in (re.sub(r"[^\w']", "", t.lower()) for t in table.column("word").to_pylist()) if w)


def test_chunks_are_cut_in_silences_resume_and_merge_into_the_whole_videos_streams(tmp_path, long_video,
                                                                                 monkeypatch):
    path, spans = long_video
    source = VideoSource("long", str(path))
    store = FeatureStore(tmp_path / "chunked")
    specs = _specs(AV, CHUNKING)
    plan = prepare_video(source, store, specs, None, decode_options=OPTIONS, chunking=CHUNKING)["_plan"]
    cuts = [c.start for c in plan.chunks[1:]]
    assert len(plan.chunks) >= 3 and plan.chunks[-1].end is None
    for cut in cuts:  # in a silence between two clips, on the 10-fps grid
        assert not any(a - 0.05 < cut < b + 0.05 for a, b in spans), (cut, spans)
        assert abs(cut * 10 - round(cut * 10)) < 1e-6

    first = extract_chunk(source, store, plan, 0, OPTIONS)  # then the run is killed
    assert sorted(first["computed"]) == ["acoustic", "visual", "voice"] and not first["errors"]
    assert store.chunk_info("acoustic", "long", 0).rows > 0 and not store.has_stream("acoustic", "long")

    import workflows.extract.tasks as task

    windows = []
    real = task.extract_window
    monkeypatch.setattr(task, "extract_window", lambda *a, **k: windows.append(k.get("start")) or real(*a, **k))
    row = extract_video(source, store, specs, None, decode_options=OPTIONS, chunking=CHUNKING)  # the rerun
    assert windows == cuts, "only the unfinished chunks are extracted again"
    assert row["status"] == "done" and sorted(row["_computed"]) == ["acoustic", "visual", "voice"]
    assert not (Path(store.root) / "_chunks" / "video_id=long").exists()
    monkeypatch.undo()

    whole = FeatureStore(tmp_path / "whole")
    reference = extract_video(source, whole, _specs(AV, None), None, decode_options=OPTIONS)
    assert row["duration"] == pytest.approx(reference["duration"], abs=1e-6)
    a, b = store.read_stream("acoustic"), whole.read_stream("acoustic")
    np.testing.assert_allclose(a.column("time").to_numpy(), b.column("time").to_numpy(), atol=1e-9)
    same = np.isclose(feature_matrix(a), feature_matrix(b), rtol=1e-4, atol=1e-3).all(axis=1)
    # the few frames that differ are quiet ones: FFmpeg's AAC decoder draws the noise of noise-substituted bands
    # from a generator whose state depends on where decoding began (differences of ~1e-4)
    assert same.mean() > 0.99, f"{(~same).sum()} acoustic frames differ"
    loudness = feature_matrix(b)[:, acoustic_names(whole).index("rms_db")]
    assert np.all(loudness[~same] < -25), loudness[~same]
    # the voice stream: every 10-ms block once, the same level, the same speech (chunks are cut in silences)
    a, b = store.read_stream("voice"), whole.read_stream("voice")
    np.testing.assert_allclose(a.column("time").to_numpy(), b.column("time").to_numpy(), atol=1e-9)
    (level_a, speech_a), (level_b, speech_b) = feature_matrix(a).T, feature_matrix(b).T
    loud = level_b > -25
    np.testing.assert_allclose(level_a[loud], level_b[loud], atol=1e-2)
    times = b.column("time").to_numpy()
    assert (speech_a == speech_b).mean() > 0.99 and all(speech_b[(times >= s) & (times < e)].any() for s, e in spans)
    assert not speech_b[~np.any([(times >= s - 0.5) & (times < e + 0.5) for s, e in spans], axis=0)].any()

    va, vb = store.read_stream("visual"), whole.read_stream("visual")
    ta, tb = va.column("time").to_numpy(), vb.column("time").to_numpy()
    # the frames decode(fps=10) keeps, every one: the chunks' frames partition them, and the extractor's own
    # sampling of each 50-frame batch drops none (it dropped half of a 15-fps video's frames in some batches)
    np.testing.assert_array_equal(tb, decode(path, fps=10.0, max_side=16).frame_times)
    np.testing.assert_array_equal(ta, tb)
    assert np.diff(ta).max() <= 0.1 + 1 / 15 + 1e-9, "frames cover the whole video at 10 fps"
    np.testing.assert_allclose(feature_matrix(va), feature_matrix(vb), atol=1e-5)


def test_the_words_of_a_long_video_are_those_of_its_parts_transcribed_one_by_one(tmp_path, long_video):
    path, spans = long_video
    source = VideoSource("long", str(path))
    store = FeatureStore(tmp_path / "store")
    specs = _specs({"acoustic": None, "visual": None}, CHUNKING)
    row = extract_video(source, store, specs, None, decode_options=OPTIONS, chunking=CHUNKING)
    assert row["status"] == "done", row["error_message"]
    words = store.read_stream("language", ["long"])
    starts = words.column("start").to_numpy()
    utterances = words.column("utterance").to_numpy()
    assert np.all(np.diff(starts) >= 0) and np.all(np.diff(utterances) >= 0)
    assert len(set(utterances)) >= len(spans) - 1, "utterance ids continue across chunks"

    from workflows.extract.worker import worker_extractor

    extractor = worker_extractor(specs[0])[0]
    parts = []
    for k, (a, b) in enumerate(spans):  # each clip with half of the silences around it, on its own
        lo = 0.0 if k == 0 else (spans[k - 1][1] + a) / 2
        hi = None if k == len(spans) - 1 else (b + spans[k + 1][0]) / 2
        part = extractor.extract(decode(path, start=lo, end=hi, video=False))
        assert all(lo <= t < (hi or np.inf) for t in part.column("start").to_pylist())
        parts.append(_words(part))
    reference = " ".join(p for p in parts if p)
    error = jiwer.wer(reference, _words(words))
    assert error <= 0.05, (error, " | ".join(parts), _words(words))


def test_the_chunks_of_one_video_run_on_every_worker(tmp_path, long_video):
    from distributed import Client, LocalCluster, get_task_stream

    path, _ = long_video
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            summary = extract_corpus([VideoSource("long", str(path))], tmp_path / "store", client=client,
                                     extractors=build_extractors({"language": None, "visual": None}),
                                     progress=False, chunking=CHUNKING)
        assert (summary.done, summary.failed) == (1, 0) and summary.chunks >= 3
        workers = {t["worker"] for t in stream.data if str(t["key"]).startswith("extract_chunk")}
        assert len(workers) == 2, workers
    rows = FeatureStore(tmp_path / "store").videos()
    assert rows.loc[0, "status"] == "done" and rows.loc[0, "acoustic_rows"] > 0
