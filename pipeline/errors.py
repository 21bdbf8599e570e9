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
