"""Cluster safety: a store is written in one place whatever the workers' working directories, on a real
scheduler and worker started as separate processes on loopback (the way `dask scheduler` / `dask worker` run on a
cluster), with a relative --store and a relative input given from yet another directory."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.store import FeatureStore
from tests.workflows.extract.test_kills import write_wav

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def test_a_worker_in_another_directory_writes_the_store_where_the_client_says(tmp_path):
    from distributed import Client

    elsewhere, here = tmp_path / "elsewhere", tmp_path / "here"
    (here / "videos").mkdir(parents=True)
    elsewhere.mkdir()
    write_wav(here / "videos" / "a.wav", 1.0)
    write_wav(here / "videos" / "b.wav", 1.5, 330.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    scheduler = _start(["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                        "--dashboard-address", "127.0.0.1:0"], elsewhere)
    worker = None
    try:
        worker = _start(["worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                         "--host", "127.0.0.1"], elsewhere)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            assert set(client.run(os.getcwd).values()) == {str(elsewhere)}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        run = subprocess.run([sys.executable, "-m", "workflows.cli", "extract", "videos", "--store", "store",
                              "--scheduler", address, "--language", "none", "--acoustic", "librosa",
                              "--visual", "none", "--no-progress"],
                             cwd=here, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Dask dashboard: http://" in run.stderr
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    store = FeatureStore(here / "store")
    assert sorted(store.videos()["video_id"]) == ["a", "b"] and (store.videos()["status"] == "done").all()
    assert store.stream_video_ids("acoustic") == ["a", "b"]
    assert not list(elsewhere.rglob("*.parquet")), "the worker wrote into its own directory"
    assert all(Path(p).is_absolute() for p in store.videos()["path"])
