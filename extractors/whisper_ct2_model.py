"""The CTranslate2 whisper model itself, one per process and settings, loaded without importing torch.

Loading it in a background thread before torch's import (so that the 0.5-0.9 s of C++ ran beside 1.5 s of imports)
made a 1-s clip 1.2 s faster, but once in a few runs a worker hung: the load and other threads' imports of extension
modules (numba, matplotlib) waited on each other. It was taken out; docs/benchmarks.md, "Start-up", has the figures.
"""
from __future__ import annotations

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
    load another thread started, waited for. A failed load raises here and is tried again next time."""
    key = model_key(directories, compute_type, threads)
    future, loads_here = _claim(key)
    if loads_here:
        _load(future, key, directories)
    return future.result()


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
