"""Errors that name the file and the pipeline stage, so a batch can record them and go on.

Each is a subclass of a builtin, so callers can catch ``ValueError`` / ``FileNotFoundError`` as usual.
"""
from __future__ import annotations

from pathlib import Path


class StageError(RuntimeError):
    """A failure of one pipeline ``stage`` (``decode``, ``language``, ``acoustic``, ``visual``...) on one file."""

    def __init__(self, path: str | Path | None, stage: str, message: str):
        self.path = str(path) if path is not None else None
        self.stage = stage
        self.message = message
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}[{stage}] {message}")


class MediaError(StageError, ValueError):
    """The input is not decodable media (corrupt, truncated, empty or not a video at all)."""


class MediaNotFoundError(StageError, FileNotFoundError):
    """The input path does not exist."""


class AssetNotFoundError(FileNotFoundError):
    """A model asset (weights, vocabulary) could not be resolved offline; the message says how to provide it."""


class StoreLockedError(BlockingIOError):
    """Another run is writing the store (``pipeline/store_lock.py``); the message names it and when it started."""


USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, StageError)
"""What a user can fix: bad input or options (ValueError), missing or unreadable files, unreachable schedulers and
timeouts (OSError: FileNotFoundError, PermissionError, ConnectionError, TimeoutError), a failed stage."""


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is the user's to fix (see :data:`USER_ERRORS`) rather than a bug of ours."""
    if isinstance(error, USER_ERRORS):
        return True
    # name look-ups (unknown preset, ablation, extractor) raise KeyError with a sentence; KeyError('x') is a bug
    return isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str) \
        and " " in error.args[0].strip()


def one_line(error: BaseException) -> str:
    """The first line of ``error``'s message, plus its hint (a later line or note starting with "hint") if any."""
    # str(KeyError("msg")) is "'msg'": take the message itself
    text = error.args[0] if isinstance(error, KeyError) and len(error.args) == 1 else str(error)
    lines = [line.strip() for line in [*str(text).splitlines(), *getattr(error, "__notes__", ())] if line.strip()]
    if not lines:
        return type(error).__name__
    hint = next((line for line in lines[1:] if line.lower().startswith("hint")), None)
    return f"{lines[0]} ({hint})" if hint else lines[0]
