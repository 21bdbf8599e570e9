"""openai-whisper's word-timing DTW, compiled once per installation instead of once per process.

``whisper.timing.dtw_cpu`` is a numba kernel compiled without ``cache=True``: every process that timed words
compiled it again on its first clip (3 to 7 s of a 1-s clip's extraction on 2 cores, measured 2026-12-05). The two
kernels below are openai-whisper's own (``whisper/timing.py``, MIT licence, 20250625), compiled with
``cache=True``: numba stores them beside this file (or in ``$NUMBA_CACHE_DIR``) and later processes load them in
milliseconds. Same code, same argument types: the same alignment path.

Imports numba and numpy only, so that :func:`extractors.acoustic.warm_numba_caches` can compile it before worker
processes start without importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    import torch


@numba.jit(nopython=True, cache=True)
def backtrace(trace: np.ndarray) -> np.ndarray:
    """(N + 1, M + 1) trace of :func:`dtw_cpu` -> (2, K) int64 path: text indices, time indices."""
    i = trace.shape[0] - 1
    j = trace.shape[1] - 1
    trace[0, :] = 2
    trace[:, 0] = 1

    result = []
    while i > 0 or j > 0:
        result.append((i - 1, j - 1))

        if trace[i, j] == 0:
            i -= 1
            j -= 1
        elif trace[i, j] == 1:
            i -= 1
        elif trace[i, j] == 2:
            j -= 1
        else:
            raise ValueError("Unexpected trace[i, j]")

    result = np.array(result)
    return result[::-1, :].T


@numba.jit(nopython=True, parallel=True, cache=True)
def dtw_cpu(x: np.ndarray) -> np.ndarray:
    """(N, M) float64 cost matrix -> (2, K) path of least total cost from (0, 0) to (N - 1, M - 1)."""
    N, M = x.shape
    cost = np.ones((N + 1, M + 1), dtype=np.float32) * np.inf
    trace = -np.ones((N + 1, M + 1), dtype=np.float32)

    cost[0, 0] = 0
    for j in range(1, M + 1):
        for i in range(1, N + 1):
            c0 = cost[i - 1, j - 1]
            c1 = cost[i - 1, j]
            c2 = cost[i, j - 1]

            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2

            cost[i, j] = x[i - 1, j - 1] + c
            trace[i, j] = t

    return backtrace(trace)


def dtw(x: "torch.Tensor") -> np.ndarray:
    """``whisper.timing.dtw``: the cached kernel on CPU, whisper's Triton kernel on CUDA."""
    if x.is_cuda:
        from whisper.timing import dtw as whisper_dtw

        return whisper_dtw(x)
    return dtw_cpu(x.double().cpu().numpy())


def warm() -> None:
    """Compile (or load) the kernels once, in this process."""
    dtw_cpu(np.zeros((2, 3)))
