"""One writer per store: a lock file in the store's root, taken atomically and released when the writer is done.

``ROOT/_lock.json`` names its holder: host, pid, when it took the lock and its command line. It is created with
``O_CREAT | O_EXCL`` on a local store (``open(..., "xb")`` through fsspec elsewhere), so of two runs started at
once exactly one gets it, and the other fails at once with a one-line :class:`StoreLockedError` naming the holder.
The ``with`` block releases it however it ends (an exception, Ctrl-C); the thread that holds it may take it again
inside (a command holds it while it starts its cluster, then its workflow takes it). A lock whose holder is gone
is stale:

* same host, pid no longer running (or running a process started after the lock: a reused pid): taken over, with
  a one-line notice;
* another host: its pid cannot be checked from here, so the run is refused, naming the host; if no run there
  writes the store any more, remove ``ROOT/_lock.json``.

Readers never take it: a store being written is readable at any moment (every file is written atomically).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

from pipeline.errors import StoreLockedError

LOCK_NAME = "_lock.json"  # readers skip names starting with "_"
UNREADABLE_GRACE = 10.0  # seconds: a lock file still empty this long after its creation is a killed writer's
_HELD: dict[tuple[int, str], tuple[int, "LockHolder"]] = {}  # the locks this process holds: thread, holder


@dataclass(frozen=True)
class LockHolder:
    """Who holds a store's lock; ``started``: seconds since the epoch."""

    host: str
    pid: int
    started: float
    command: str
    token: str

    @classmethod
    def of_this_process(cls) -> "LockHolder":
        return cls(host=socket.gethostname(), pid=os.getpid(), started=time.time(),
                   command=" ".join(sys.argv)[:200], token=uuid.uuid4().hex)

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return f"pid {self.pid} on host {self.host} since {since}" + (f" ({self.command})" if self.command else "")

    def is_running(self) -> bool | None:
        """Whether the holder still runs; None when it runs on another host (it cannot be checked from here)."""
        if self.host != socket.gethostname():
            return None
        import psutil

        try:
            created = psutil.Process(self.pid).create_time()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:  # another user's process: alive
            return True
        return created <= self.started + 1.0  # a process started after the lock was taken reuses the pid


@contextlib.contextmanager
def store_lock(fs, root: str, *, url: str, log: Callable[[str], None] | None = None) -> Iterator[LockHolder]:
    """Hold the write lock of the store at ``root`` (a path of ``fs``; ``url`` names it in messages) for the block.

    Raises :class:`StoreLockedError` when a running writer holds it; a stale lock is taken over with a one-line
    notice to ``log`` (default: stderr).
    """
    log = log or (lambda line: print(line, file=sys.stderr))
    path = f"{root.rstrip('/')}/{LOCK_NAME}"
    key = (id(type(fs)), path)
    held = _HELD.get(key)
    if held is not None and held[0] == threading.get_ident():  # nested: the command took it before its workflow
        yield held[1]  # the outer block releases it
        return
    me = LockHolder.of_this_process()
    for _ in range(3):  # a stale lock removed, then created again: another run may win that race
        if _create(fs, path, me):
            break
        holder = _read(fs, path)
        if holder is None:
            age = _age(fs, path)
            if age is not None and age < UNREADABLE_GRACE:
                raise StoreLockedError(f"store {url} is being locked by another run at this moment "
                                       f"({path} is still empty); wait for it")
            stale = "an unreadable lock file"
        else:
            running = holder.is_running()
            if running is not False:
                raise StoreLockedError(_refusal(url, path, holder, running))
            stale = f"the lock of {holder.describe()}, which no longer runs"
        if _remove_if_unchanged(fs, path, holder):
            log(f"warning: {url}: took over {stale}")
    else:
        raise StoreLockedError(f"store {url}: another run took its lock at the same moment; wait for it")
    _HELD[key] = (threading.get_ident(), me)
    try:
        yield me
    finally:
        del _HELD[key]
        if _read(fs, path) == me:  # never remove a lock someone else took over meanwhile
            fs.rm(path)


def _refusal(url: str, path: str, holder: LockHolder, running: bool | None) -> str:
    if running is None:
        return (f"store {url} is being written by {holder.describe()}; wait for it, or, if no run on "
                f"{holder.host} writes it any more, remove {path}")
    return f"store {url} is being written by {holder.describe()}; wait for it to finish, or stop it"


def _create(fs, path: str, holder: LockHolder) -> bool:
    """Create the lock file holding ``holder``, unless it exists; atomic on a local store and on fsspec
    filesystems that support exclusive creation (``memory://``, s3fs, gcsfs)."""
    content = json.dumps(asdict(holder)).encode()
    if _is_local(fs):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return True
    try:
        with fs.open(path, "xb") as f:
            f.write(content)
        return True
    except FileExistsError:
        return False
    except (ValueError, NotImplementedError):  # no exclusive creation there: checked, then written (not atomic)
        if fs.exists(path):
            return False
        fs.pipe_file(path, content)
        return True


def _read(fs, path: str) -> LockHolder | None:
    try:
        with fs.open(path, "rb") as f:
            return LockHolder(**json.loads(f.read()))
    except (OSError, ValueError, TypeError):  # gone, or half-written by a writer killed at its creation
        return None


def _age(fs, path: str) -> float | None:
    try:
        modified = fs.modified(path)
    except (OSError, NotImplementedError):
        return None
    return time.time() - modified.timestamp()


def _remove_if_unchanged(fs, path: str, stale: LockHolder | None) -> bool:
    """Remove the stale lock, unless another run replaced it since it was read; True when this run removed it."""
    if _is_local(fs):  # renamed aside first: of two runs taking it over, one renames it, the other finds none
        aside = f"{path}.{uuid.uuid4().hex[:12]}.stale"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if _read(fs, aside) != stale:  # a fresh lock taken meanwhile: put it back
            with contextlib.suppress(OSError):
                os.link(aside, path)
            os.unlink(aside)
            return False
        os.unlink(aside)
        return True
    if _read(fs, path) != stale:
        return False
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path)
    return True


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)
