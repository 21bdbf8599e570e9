"""Dask clients: created at the edge (the ``mcr`` commands), found by the library.

Library functions take ``client: Client | None`` and, when it is None, use :func:`current_client` (the client the
caller has open, as ``distributed.get_client()`` finds it), the way xgboost's Dask interface does. Only the commands
(and ``mcr run``) open one, with :func:`open_client`: a LocalCluster on this machine, or a running cluster's
scheduler.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipeline.options import Bound

if TYPE_CHECKING:
    from distributed import Client


def _most_local_workers() -> int:
    """4 per core, and no more than the open-file limit allows (a worker process and its pipes and sockets take
    about 16 descriptors of the process that starts it)."""
    import resource

    return max(1, min(4 * (os.cpu_count() or 1), resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 16))


WORKERS = Bound(int, 1, _most_local_workers(), why="4 per core, within the open-file limit")
"""Local Dask workers (``--workers``, ``[extract] workers``)."""
CONNECT_TIMEOUT = 10  # seconds before an unreachable scheduler is an error
WORKERS_ENV = "MCR_LOCAL_WORKERS"  # "threads": a LocalCluster's workers run in this process (the test suite's)


def absolute(path_or_url: str) -> str:
    """A local path made absolute, since workers may run in other directories; URLs as they are."""
    return path_or_url if "://" in path_or_url else os.path.abspath(path_or_url)


def current_client(client: "Client | None" = None) -> "Client":
    """``client``, else the Dask client this process has open (``distributed.get_client()``)."""
    if client is not None:
        return client
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        raise ValueError("[dask] no Dask client is open: pass client=..., or open one first "
                         "(distributed.Client() starts a local cluster)") from None


# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, so that glibc hands freed memory back at once;
# it also fixes glibc's mmap threshold, so every buffer of whisper, MediaPipe and the decoder over 64 KiB is mapped
# and unmapped (page faults) each time: extraction took 1.31x the CPU (45.2 vs 34.5 s on the 3-minute video,
# benchmarks/extract_speed.py). Unset, glibc's defaults; peak memory: docs/benchmarks.md (extract_memory).
WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def local_client(n_workers: int | None = None, *, threads_per_worker: int = 1, processes: bool | None = None,
                 dashboard: bool = True, warm_numba: bool = True) -> "Client":
    """A LocalCluster of single-threaded worker processes (one per core, or ``n_workers``), on loopback only.

    processes: False runs the workers as threads of this process: they start at once and share the models this
        process has loaded (one extractor call at a time), at the cost of parallelism. None: processes, unless
        ``$MCR_LOCAL_WORKERS`` is ``threads`` (how the test suite runs, so that its many small clusters load
        whisper once).
    dashboard: serve Dask's dashboard (on a free loopback port).
    warm_numba: with processes, compile numba's kernels here first (1-2 s), so that workers starting at once load
        complete cache files; False when no extractor of the run uses numba (``Extractor.uses_numba``).
    """
    import dask
    from distributed import Client, LocalCluster

    if n_workers is not None:
        WORKERS.check(n_workers, "workers")
    if processes is None:
        mode = os.environ.get(WORKERS_ENV, "processes")
        if mode not in ("processes", "threads"):
            raise ValueError(f"${WORKERS_ENV}={mode!r}: use 'processes' (the default) or 'threads'")
        processes = mode == "processes"
    if processes and warm_numba:  # numba's cache files complete before worker processes compile at once
        from extractors.acoustic import warm_numba_caches

        warm_numba_caches()
    with dask.config.set(WORKER_ENVIRON):
        cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=threads_per_worker,
                               processes=processes, host="127.0.0.1", protocol="tcp://",  # in-process too: loopback
                               dashboard_address="127.0.0.1:0" if dashboard else None, silence_logs=logging.ERROR)
    return Client(cluster)


def as_a_worker_process() -> None:
    """One OpenMP/MKL/OpenBLAS thread in this process from now on, as Dask's nanny gives worker processes
    (``OMP_NUM_THREADS=1``): torch's matrix products on two threads round some of whisper's word probabilities
    differently. Before torch is imported, through the environment; after, ``torch.set_num_threads(1)``."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def connect(address: str, *, timeout: float = CONNECT_TIMEOUT) -> "Client":
    """A client of the running scheduler at ``address``; a one-line ConnectionError when it cannot be reached."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConnectionError(f"{address}: [dask] cannot reach a Dask scheduler there within {timeout:.0f} s "
                              f"({type(exc).__name__}); check the address (tcp://HOST:8786) and that "
                              "`dask scheduler` runs") from None


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None, *, announce: bool = True,
                in_process: bool = False, warm_numba: bool = True) -> Iterator["Client"]:
    """A Dask client for the block: of the scheduler at ``scheduler``, else of a new LocalCluster of ``workers``.

    announce: print the dashboard's address to stderr.
    in_process: without ``scheduler``, one worker thread in this process and no dashboard, for work that is one
        task (one short video): no process to start, each model loaded once, while the video decodes. Its torch
        runs one thread, as a worker process's does (:func:`as_a_worker_process`), so it computes the same
        features, bit for bit.
    warm_numba: as :func:`local_client`'s.
    """
    if in_process and not scheduler:
        as_a_worker_process()
        client = local_client(1, processes=False, dashboard=False)
    else:
        client = connect(scheduler) if scheduler else local_client(workers, warm_numba=warm_numba)
    try:
        if announce and not in_process and client.dashboard_link:
            print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client
    finally:
        cluster = None if scheduler else client.cluster
        client.close()
        if cluster is not None:
            cluster.close()
