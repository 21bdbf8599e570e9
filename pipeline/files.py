"""Files written whole or not at all, and content hashes: the project's one atomic writer and one file hasher.

Every write goes to a hidden temporary file (``.<name>.<random>.tmp``) in the target's folder and is renamed onto
the target, so a reader (or a process killed at any instant) sees the old file or the new one, never half of one.
Readers of the store skip hidden files; :func:`remove_temporaries` clears those a killed writer left behind.
Local paths are fsynced before the rename; fsspec filesystems (object stores) get one server-side move.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

Content = bytes | str | Callable[[str], None]
"""What :func:`atomic_write` writes: bytes, text (UTF-8), or a function that writes a file at the path it is given."""


def _is_local(fs) -> bool:
    if fs is None:
        return True
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _write_local(path: str, content: Content) -> None:
    if callable(content):
        content(path)
    else:
        with open(path, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
    with open(path, "rb+") as f:  # the rename must not overtake the data
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, content: Content, *, fs=None) -> str:
    """Write ``content`` to ``path`` atomically; returns ``path``.

    Args:
        path: the target, a local path or (with ``fs``) a path inside an fsspec filesystem.
        content: bytes, text, or ``write(tmp_path)`` for libraries that write files themselves (safetensors,
            torch.save, Parquet). On a remote ``fs`` the function writes a local file that is then uploaded.
        fs: an fsspec filesystem; None for the local one.
    """
    path = os.fspath(path)
    parent, name = os.path.split(path) if _is_local(fs) else path.rsplit("/", 1)
    tmp = f"{parent or '.'}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
    if _is_local(fs):
        os.makedirs(parent or ".", exist_ok=True)
        try:
            _write_local(tmp, content)
            os.replace(tmp, path)  # atomic on POSIX and Windows
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path
    fs.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory() as local:
        staged = os.path.join(local, name)
        _write_local(staged, content)
        try:
            fs.put_file(staged, tmp)
            fs.mv(tmp, path)  # one server-side copy: the target appears whole
        except BaseException:
            if fs.exists(tmp):
                fs.rm(tmp)
            raise
    return path


def read_json(path: str | os.PathLike, *, stage: str = "load", hint: str = "") -> Any:
    """The JSON value of the local file ``path``; one line naming the file when it is missing, unreadable or not
    JSON (``hint``: what to do, appended)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: [{stage}] missing" + (f"; {hint}" if hint else "")) from None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = " ".join(str(exc).split())
        raise ValueError(f"{path}: [{stage}] not readable JSON ({detail})" + (f"; {hint}" if hint else "")) from None


def write_json(path: str | os.PathLike, obj: Any, *, fs=None) -> str:
    """``obj`` as indented JSON, written atomically."""
    return atomic_write(path, json.dumps(obj, indent=2) + "\n", fs=fs)


def is_temporary(path: str) -> bool:
    """Whether ``path`` names a temporary file of :func:`atomic_write`."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name.startswith(".") and name.endswith(".tmp")


def remove_temporaries(root: str, *, fs=None) -> int:
    """Remove the temporaries killed writers left under ``root`` (only while no one writes there); the count."""
    if fs is None:
        stale = [str(p) for p in Path(root).rglob(".*.tmp")] if Path(root).exists() else []
        for p in stale:
            os.unlink(p)
        return len(stale)
    if not fs.exists(root):
        return 0
    stale = [p for p in fs.find(root) if is_temporary(p)]
    for p in stale:
        fs.rm(p)
    return len(stale)


def sha256_file(path: str | os.PathLike, *, fs=None, limit: int | None = None, chunk: int = 1 << 22) -> str:
    """SHA-256 (hex) of a file's content, read in chunks; only its first ``limit`` bytes when ``limit`` is set."""
    digest = hashlib.sha256()
    opener = open if fs is None else fs.open
    left = -1 if limit is None else limit  # bytes still to read; -1: all
    with opener(os.fspath(path), "rb") as f:
        while left != 0:
            block = f.read(chunk if left < 0 else min(chunk, left))
            if not block:
                break
            digest.update(block)
            left = left - len(block) if left > 0 else left
    return digest.hexdigest()


class HashingFile:
    """A binary file open for writing that hashes what is written through it (SHA-256, :meth:`hexdigest`): a file
    hashed as it is written need not be read back to be hashed."""

    def __init__(self, file):
        self.file = file
        self._digest = hashlib.sha256()

    def write(self, data) -> int:
        self._digest.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def sha256_text(text: str) -> str:
    """SHA-256 (hex) of a string: the hash of configs and fingerprints (files go through :func:`sha256_file`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes | memoryview) -> str:
    """SHA-256 (hex) of bytes in memory: the key of a piece of decoded audio (``extractors.whisper_model``)."""
    return hashlib.sha256(data).hexdigest()
