"""``workflows.cluster.local_client``: worker processes by default, threads of this process on request."""
from __future__ import annotations

import os

import pytest

from workflows.cluster import WORKERS_ENV, local_client


def _pids(processes: bool | None) -> set[int]:
    client = local_client(1, processes=processes)
    try:
        assert client.dashboard_link.startswith("http://127.0.0.1:"), client.dashboard_link
        return set(client.run(os.getpid).values())
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


def test_threads_run_in_this_process_and_processes_elsewhere(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "threads")
    assert _pids(None) == {os.getpid()}
    assert _pids(True) != {os.getpid()}  # an explicit choice wins over the environment


def test_an_unknown_mode_is_refused_before_any_cluster_starts(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "thread")
    with pytest.raises(ValueError, match=r"MCR_LOCAL_WORKERS='thread'.*'processes'.*'threads'"):
        local_client(1)


def test_worker_processes_keep_glibcs_own_trim_threshold(monkeypatch):
    """Dask's nannies would set MALLOC_TRIM_THRESHOLD_=65536 in their workers, which made extraction take 1.31x the
    CPU (every large buffer mapped and unmapped); local_client's workers start without it, others' settings stay."""
    import dask

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"] == 65536
    client = local_client(1, processes=True)
    try:
        environ = next(iter(client.run(lambda: dict(os.environ)).values()))
        assert "MALLOC_TRIM_THRESHOLD_" not in environ
        assert environ["OMP_NUM_THREADS"] == "1"  # Dask's other worker settings are kept
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    assert dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"] == 65536


def test_numba_caches_are_warmed_before_worker_processes_only_when_an_extractor_compiles_kernels(monkeypatch):
    """Warming them costs the start-up 1-2 s before the workers can start; the default streams compile none."""
    import extractors.acoustic
    from workflows.extract import build_extractors

    assert not any(e.uses_numba for e in build_extractors())  # whisper-encoder, CTranslate2's word timing
    assert [e.uses_numba for e in build_extractors({"acoustic": "librosa", "visual": None, "language": None})
            if e.modality == "acoustic"] == [True]
    assert [e.uses_numba for e in build_extractors({"acoustic": None, "visual": None}, {"language": {
        "engine": "openai-whisper"}}) if e.modality == "language"] == [True]  # its word-timing DTW
    warmed = []
    monkeypatch.setattr(extractors.acoustic, "warm_numba_caches", lambda: warmed.append(True))
    for warm in (False, True):
        client = local_client(1, processes=True, warm_numba=warm, dashboard=False)
        cluster = client.cluster
        client.close()
        cluster.close()
    assert warmed == [True]
