"""The CTranslate2 whisper model itself, one per process and settings, loaded without importing torch.

Loading the bundled base model takes 0.5-0.9 s of C++ that does not hold the GIL, while importing torch and
openai-whisper (which :mod:`extractors.whisper_ct2_engine` needs) takes 1.5 s of Python that does. A worker that
loaded the model after those imports paid both in turn; :func:`prefetch_ct2_model` starts the load first, so it runs
on the other core while the imports hold this one (a 1-s clip end to end: docs/benchmarks.md, "Start-up").
"""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

_LOADS: dict[tuple, Future] = {}
_LOCK = threading.Lock()


def device_and_compute_type(compute_type: str) -> tuple[str, str]:
    """Where CTranslate2 runs ("cuda" when it sees a GPU, else "cpu") and at which compute type. "auto": float16 on
    CUDA, float32 on CPU (int8 and int16 were faster but changed words: see :mod:`extractors.whisper_ct2_engine`)."""
    import ctranslate2

    device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "float32"
    return device, compute_type


def torch_threads() -> int | None:
    """torch's intra-op threads in this process, known without importing torch: torch's own setting once it is
    imported, 1 before that when ``OMP_NUM_THREADS`` is 1 (Dask's worker processes and
    :func:`workflows.cluster.as_a_worker_process`), else None (torch picks from the cores, capped, when imported)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    return 1 if os.environ.get("OMP_NUM_THREADS", "").strip() == "1" else None


def load_ct2_whisper(directories: list[Path], *, device: str = "cpu", compute_type: str = "int8", threads: int = 1):
    """A new ``ctranslate2.models.Whisper`` of the model in ``directories``: from its directory when it has one
    ``model.bin``, else from memory, its chunks joined (nothing written to disk)."""
    import ctranslate2

    from extractors.whisper_ct2 import model_bin_chunks

    directories = [Path(d) for d in directories]
    chunks = [c for d in directories for c in model_bin_chunks(d)]
    if not chunks:
        raise ValueError(f"{directories[0]}: no model.bin (or model.bin.part*): not a CTranslate2 model directory")
    options = dict(device=device, compute_type=compute_type, intra_threads=threads)
    if len(directories) == 1 and chunks[0].name == "model.bin":
        return ctranslate2.models.Whisper(str(directories[0]), **options)
    files = {"model.bin": b"".join(c.read_bytes() for c in chunks)}
    for name in ("config.json", "vocabulary.json", "vocabulary.txt"):
        if (directories[0] / name).is_file():
            files[name] = (directories[0] / name).read_bytes()
    return ctranslate2.models.Whisper(str(directories[0]), files=files, **options)


def model_key(directories: list[Path], compute_type: str, threads: int) -> tuple:
    """(resolved directories, device, compute type, threads): what tells two loads of the model apart."""
    device, compute_type = device_and_compute_type(compute_type)
    return tuple(str(Path(d).resolve()) for d in directories), device, compute_type, threads


def shared_ct2_model(directories: list[Path], *, compute_type: str = "auto", threads: int = 1):
    """This process's ``ctranslate2.models.Whisper`` of ``directories`` at ``compute_type`` (as
    :func:`device_and_compute_type` reads it) on ``threads`` intra-op threads: loaded here on first use, or the
    load :func:`prefetch_ct2_model` started, waited for. A failed load raises here and is tried again next time."""
    key = model_key(directories, compute_type, threads)
    future, loads_here = _claim(key)
    if loads_here:
        _load(future, key, directories)
    return future.result()


def prefetch_ct2_model(directories: list[Path], *, compute_type: str = "auto", threads: int | None = None) -> bool:
    """Start loading :func:`shared_ct2_model`'s model in a background thread unless it is loaded or loading;
    ``threads`` None: :func:`torch_threads`, and nothing is started when that is unknown. Whether a load started.
    An error is left for :func:`shared_ct2_model` to raise, where the extractor reports it."""
    threads = threads or torch_threads()
    if threads is None:
        return False
    key = model_key(directories, compute_type, threads)
    future, loads_here = _claim(key)
    if loads_here:
        threading.Thread(target=_load, args=(future, key, directories), name="load whisper (CTranslate2)",
                         daemon=True).start()
    return loads_here


def _claim(key: tuple) -> tuple[Future, bool]:
    """The future of ``key``'s model, and whether the caller was the first to ask (and must load it)."""
    with _LOCK:
        if key in _LOADS:
            return _LOADS[key], False
        future = _LOADS[key] = Future()
        return future, True


def _load(future: Future, key: tuple, directories: list[Path]) -> None:
    """Load ``key``'s model into ``future``; on an error, the error, and ``key`` is forgotten (tried again)."""
    _, device, compute_type, threads = key
    try:
        future.set_result(load_ct2_whisper(directories, device=device, compute_type=compute_type, threads=threads))
    except BaseException as error:  # noqa: BLE001 (handed to whoever waits: shared_ct2_model raises it)
        with _LOCK:
            _LOADS.pop(key, None)
        future.set_exception(error)
