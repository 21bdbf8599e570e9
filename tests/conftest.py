"""Suite-wide settings for ``make test`` (two test processes on two cores).

* The commands' LocalClusters run their workers as threads of the test process (``$MCR_LOCAL_WORKERS=threads``, see
  :func:`workflows.cluster.local_client`): whisper, GloVe and the face landmarker load once per test process rather
  than once per cluster worker. Tests about worker processes (a worker killed, a worker in another directory,
  chunks spread over workers) start process clusters explicitly.
* One BLAS/OpenMP thread per process, as Dask's nannies give their workers: two test processes on two cores, each
  with two torch threads, spent a third of their time waiting for each other.
* Modules with slow tests run first, so that the two processes finish together (``--dist loadfile`` hands out
  modules in collection order).
* librosa's numba kernels are compiled and cached once, here, before the test processes start
  (:func:`extractors.acoustic.warm_numba_caches`): in a new virtual environment, test processes compiling at once
  loaded each other's half-written cache files and segfaulted.
"""
import os

os.environ.setdefault("MCR_LOCAL_WORKERS", "threads")
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller (or a plain run), before any test process starts
        from extractors.acoustic import warm_numba_caches

        warm_numba_caches()


def pytest_collection_modifyitems(config, items):
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)  # stable: order within a module kept
