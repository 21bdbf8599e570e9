"""Start-up of `mcr extract` (issue 20, item 3): one short file runs on one worker in this process, with the features
a worker process computes, bit for bit; models start loading as soon as a worker has its extractors."""
from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.corpus import scan_folder
from pipeline.store import FeatureStore
from tests.extractors.media_files import cremad_clips
from workflows.extract.chunks import ChunkConfig
from workflows.cluster import local_client, open_client
from workflows.extract import build_extractors, extract_corpus, one_task
from workflows.extract.worker import ExtractorSpec, locked, preload, worker_extractor


def _wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(int(seconds * 16000), "<i2").tobytes())
    return path


def test_one_task_is_one_file_too_short_for_chunks(tmp_path):
    (tmp_path / "one").mkdir()
    short = scan_folder(_wav(tmp_path / "one" / "short.wav", 2.0).parent)
    assert one_task(short, ChunkConfig()) and one_task(short, None)
    (tmp_path / "long").mkdir()
    long = scan_folder(_wav(tmp_path / "long" / "long.wav", 50.0).parent)  # over 1.5 x 30 s: cut into chunks
    assert not one_task(long, ChunkConfig()) and one_task(long, ChunkConfig(seconds=40.0)) and one_task(long, None)
    _wav(tmp_path / "one" / "other.wav", 1.0)
    assert not one_task(scan_folder(tmp_path / "one"), ChunkConfig())


def test_preloaded_extractors_load_in_the_background_and_count_once():
    only_acoustic = {"language": None, "visual": None, "voice": None, "acoustic": "librosa"}
    (acoustic,) = build_extractors(only_acoustic, {"acoustic": {"hop": 0.0125}})  # a config no other test uses
    spec = ExtractorSpec.of(acoustic)
    preload([spec])
    extractor, created = worker_extractor(spec)
    with locked(extractor):  # taken once its load is over
        pass
    assert created  # the first task to get a preloaded extractor counts its load
    assert worker_extractor(spec) == (extractor, False)
    preload([spec])
    assert worker_extractor(spec) == (extractor, False)


@pytest.mark.slow
def test_one_short_file_in_process_gives_a_worker_processs_features(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    os.symlink(cremad_clips()["HAP"], clip / "1001_DFA_HAP_XX.flv")
    corpus = scan_folder(clip)
    extractors = build_extractors()
    assert one_task(corpus, ChunkConfig())
    here, there = FeatureStore(tmp_path / "in-process"), FeatureStore(tmp_path / "worker-process")
    with open_client(in_process=True) as client:
        assert client.run(os.getpid) == {next(iter(client.scheduler_info()["workers"])): os.getpid()}
        done = extract_corpus(corpus, here, client=client, extractors=extractors, progress=False)
    process = local_client(1, processes=True)
    try:
        assert set(process.run(os.getpid).values()) != {os.getpid()}
        elsewhere = extract_corpus(corpus, there, client=process, extractors=extractors, progress=False)
    finally:
        cluster = process.cluster
        process.close()
        cluster.close()
    assert done.failed == elsewhere.failed == 0 and elsewhere.model_loads == len(extractors)
    assert done.model_loads <= len(extractors)  # fewer when earlier tests in this process made some of them
    for extractor in extractors:
        a = pq.read_table(here.stream_path(extractor.modality, "1001_DFA_HAP_XX"))
        b = pq.read_table(there.stream_path(extractor.modality, "1001_DFA_HAP_XX"))
        assert a.num_rows > 0 and a.equals(b) and a.schema.metadata == b.schema.metadata, extractor.modality


def _registry() -> list[str]:
    from workflows.extract import worker

    return sorted(name for name, _ in worker._WORKER_EXTRACTORS)


def test_worker_processes_start_loading_their_models_when_the_run_has_videos_to_extract(tmp_path):
    from pipeline.manifest import VideoSource

    extractors = build_extractors({"language": None, "visual": None, "acoustic": "librosa"})
    missing = [VideoSource("gone", str(tmp_path / "gone.wav"))]  # fails in its first task, before any extractor
    client = local_client(1, processes=True, dashboard=False)
    try:
        summary = extract_corpus(missing, tmp_path / "store", client=client, extractors=extractors, progress=False)
        assert summary.failed == 1
        assert list(client.run(_registry).values()) == [["librosa", "silero-vad"]]  # preloaded all the same
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
