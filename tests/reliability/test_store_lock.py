"""One writer per store (issue 17, item 10): two `mcr extract` runs on one store both extracted everything.

The holder is a real process: a second `mcr extract` is refused at once, naming the store and the holder; the lock
of a killed run is taken over; a failed or interrupted run releases it; a lock of another host is refused.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extractors.base import DEFAULT_EXTRACTORS
from pipeline.errors import StoreLockedError
from pipeline.store import FeatureStore
from pipeline.store_lock import LOCK_NAME
from tests.workflows.extract.test_kills import write_wav
from workflows.cli import main

ROOT = Path(__file__).resolve().parents[2]
HOLD = ("import sys\nfrom pipeline.store import FeatureStore\n"
        "with FeatureStore(sys.argv[1]).writing():\n    print('held', flush=True)\n    sys.stdin.read()\n")
HOLD_AND_DIE = ("import os, signal, sys\nfrom pipeline.store import FeatureStore\n"
                "with FeatureStore(sys.argv[1]).writing():\n    os.kill(os.getpid(), signal.SIGKILL)\n")
ACOUSTIC_ONLY = [*(a for m in DEFAULT_EXTRACTORS if m != "acoustic" for a in (f"--{m}", "none")),
                 "--acoustic", "librosa", "--workers", "1", "--no-progress"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "audio"
    folder.mkdir()
    write_wav(folder / "a.wav", 1.0)
    return folder


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True, **kwargs)


def test_a_second_extract_is_refused_at_once_naming_the_holder(tmp_path, corpus):
    store = tmp_path / "store"
    holder = _python(HOLD, str(store), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        second = subprocess.run([sys.executable, "-m", "workflows.cli", "extract", str(corpus), "--store", str(store),
                                 *ACOUSTIC_ONLY], cwd=ROOT, capture_output=True, text=True, timeout=300)
        lines = second.stderr.splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert lines[0].startswith(f"mcr extract: error: store {store} is being written by pid {holder.pid} "
                                   f"on host {socket.gethostname()} since "), lines[0]
        assert "wait for it" in lines[0]
        assert not (store / "acoustic").exists() and not (store / "segments.parquet").exists()  # nothing done
    finally:
        holder.communicate(timeout=60)
    assert holder.returncode == 0
    assert not (store / LOCK_NAME).exists()  # released when the holder's block ended


def test_the_lock_of_a_killed_run_is_taken_over_with_a_notice(tmp_path, corpus, capsys):
    store = tmp_path / "store"
    killed = _python(HOLD_AND_DIE, str(store), stderr=subprocess.PIPE)
    _, err = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, err
    stale = json.loads((store / LOCK_NAME).read_text())
    assert stale["pid"] == killed.pid and stale["host"] == socket.gethostname()

    assert main(["extract", str(corpus), "--store", str(store), *ACOUSTIC_ONLY]) == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if "took over" in line]
    assert len(notices) == 1 and f"pid {killed.pid} on host" in notices[0] and "no longer runs" in notices[0]
    assert FeatureStore(store).stream_video_ids("acoustic") == ["a"]
    assert not (store / LOCK_NAME).exists()

    _lock_file(store, host="render-07", pid=4242)  # `mcr label` writes the store too: refused while it is taken
    manifest = tmp_path / "labels.csv"
    manifest.write_text("video_id,label\na,happy\n")
    assert main(["label", str(store), str(manifest)]) == 2
    assert "is being written by pid 4242 on host render-07" in capsys.readouterr().err
    assert "label" not in FeatureStore(store).segments().columns


def test_a_failed_run_releases_the_lock(tmp_path, corpus, capsys):
    store = tmp_path / "store"
    (store / "segments.parquet").mkdir(parents=True)  # the run fails at its first write, holding the lock
    assert main(["extract", str(corpus), "--store", str(store), *ACOUSTIC_ONLY]) == 2
    assert "segments.parquet" in capsys.readouterr().err
    assert not (store / LOCK_NAME).exists()
    with pytest.raises(KeyboardInterrupt), FeatureStore(store).writing():
        assert (store / LOCK_NAME).exists()
        raise KeyboardInterrupt
    assert not (store / LOCK_NAME).exists()
    (store / "segments.parquet").rmdir()
    assert main(["extract", str(corpus), "--store", str(store), *ACOUSTIC_ONLY]) == 0  # not refused


def _lock_file(store: Path, **fields) -> None:
    store.mkdir(parents=True, exist_ok=True)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "command": "mcr extract",
              "token": "x"} | fields
    (store / LOCK_NAME).write_text(json.dumps(holder))


def test_a_lock_of_another_host_is_refused_naming_the_host_and_the_way_out(tmp_path):
    store = tmp_path / "store"
    _lock_file(store, host="render-07", pid=4242)
    with pytest.raises(StoreLockedError) as refused, FeatureStore(store).writing():
        pass
    message = str(refused.value)
    assert "pid 4242 on host render-07" in message and f"remove {store / LOCK_NAME}" in message
    assert (store / LOCK_NAME).exists()  # left alone


def test_a_live_holder_is_refused_and_a_reused_pid_is_stale(tmp_path):
    store = tmp_path / "store"
    _lock_file(store, pid=os.getppid(), started=time.time())  # our parent runs, and started before the lock
    with pytest.raises(StoreLockedError, match=f"pid {os.getppid()} on host"), FeatureStore(store).writing():
        pass
    _lock_file(store, started=0.0)  # this process started after that lock: the pid was reused
    notices = []
    with FeatureStore(store).writing(log=notices.append) as me:
        assert me.pid == os.getpid() and json.loads((store / LOCK_NAME).read_text())["token"] == me.token
        with FeatureStore(store).writing():  # the same thread may take it again (the command, then its workflow)
            pass
        assert (store / LOCK_NAME).exists()
    assert len(notices) == 1 and not (store / LOCK_NAME).exists()


def test_an_object_store_is_locked_too():
    store = FeatureStore("memory://mcr-lock-test")
    with store.writing():
        with pytest.raises(StoreLockedError, match="is being written by pid"):
            _other_thread(store)
    _other_thread(store)  # released: taken and released again


def _other_thread(store: FeatureStore) -> None:
    """Take the lock in another thread (the same process, so its pid runs: refused while it is held)."""
    import threading

    errors = []

    def take():
        try:
            with FeatureStore(store.url).writing():
                pass
        except StoreLockedError as exc:
            errors.append(exc)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
