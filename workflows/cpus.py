"""How many CPU cores training may use: those this process is allowed (affinity, cgroup quota) and that are free.

On a shared machine torch's default (one thread per core) makes its threads wait for cores that other processes
hold: a training step of the RAVDESS model took 13 s with 2 threads and 2.4 s with 1 while two extraction workers
ran on the 2 cores (docs/benchmarks.md).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path


def allowed_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us``), rounded up."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def _cgroup_quota() -> float | None:
    try:
        v2 = Path("/sys/fs/cgroup/cpu.max")
        if v2.is_file():
            limit, period = v2.read_text().split()[:2]
            return None if limit == "max" else int(limit) / int(period)
        v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        if v1.is_file():
            limit = int(v1.read_text())
            return None if limit <= 0 else limit / int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None


def _busy_and_total() -> tuple[int, int] | None:
    """(busy, total) clock ticks of the whole machine so far, from /proc/stat; None where it cannot be read."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def free_cores(window: float = 0.5) -> int:
    """The cores of :func:`allowed_cores` that other processes left idle over the last ``window`` seconds (this
    process sleeps meanwhile), at least 1. Where /proc/stat is missing: every allowed core."""
    allowed = allowed_cores()
    before = _busy_and_total()
    time.sleep(window)
    after = _busy_and_total()
    if before is None or after is None or after[1] <= before[1]:
        return allowed
    machine = os.cpu_count() or allowed
    busy_cores = machine * (after[0] - before[0]) / (after[1] - before[1])
    return max(1, min(allowed, round(machine - busy_cores)))


def training_threads(requested: int = 0) -> int:
    """Torch CPU threads for training: ``requested`` when > 0, else $OMP_NUM_THREADS when set, else
    :func:`free_cores`."""
    if requested > 0:
        return requested
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return free_cores()


def denormals_are_flushed() -> bool:
    """Whether this thread's floating-point unit reads denormal floats as zero (``torch.set_flush_denormal``)."""
    import torch

    return bool((torch.tensor([1e-39]) * 1.0 == 0).item())


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Within the block, this thread's floating-point unit treats denormal floats (below 1.2e-38 in float32) as
    zero; afterwards, as before.

    CPU arithmetic on denormals is many times slower, and a trained model's step makes them (its weights hold
    none, its gradients some): MulT's training step on RAVDESS took 1.05 s after 20 epochs against
    0.61 s flushed, a fresh model's 0.62-0.68 s either way (one thread; docs/benchmarks.md, "Training on CPU").
    torch sets it for the calling thread only; its intra-op threads started before keep theirs."""
    import torch

    was_on = denormals_are_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)
