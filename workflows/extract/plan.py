"""The plan of a long video: where it is cut (:mod:`workflows.extract.chunks`), which streams its chunks compute."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflows.extract.chunks import Chunk, ChunkConfig, plan_chunks
from workflows.extract.rows import Row
from workflows.extract.worker import ExtractorSpec


@dataclass(frozen=True)
class Plan:
    """A long video's chunks and the streams to compute, as the prepare task found them."""

    chunks: tuple[Chunk, ...]
    todo: tuple[ExtractorSpec, ...]
    sha256: str
    native_fps: float | None
    margin: float
    row: Row  # the video's row so far (path, size, mtime, hash)
    seconds: float  # spent preparing
    duration: float  # the video's, as the cuts were planned on it

    def longest_first(self) -> list[Chunk]:
        """The chunks, longest first: the order their tasks start in, so that no long chunk starts last and keeps
        one worker busy while the others wait for the merge (the cuts fall in silences: lengths vary by up to 30%)."""
        return sorted(self.chunks, key=lambda c: (-((c.end if c.end is not None else self.duration) - c.start),
                                                  c.index))


def video_chunks(path: str, chunking: ChunkConfig | None, decode_options: dict[str, Any] | None
                 ) -> tuple[list[Chunk], float | None, float | None]:
    """The chunks of the video at ``path``: one for a short video (from the container's header), else cuts from the
    audio's levels; with the native frame rate and the duration when they were read."""
    from extractors.media import DEFAULT_FPS, audio_envelope, probe

    whole = [Chunk(0, 0.0, None)]
    if chunking is None:
        return whole, None, None
    declared, _, _ = probe(path)
    if declared is not None and declared <= chunking.single_max:
        return whole, None, None
    envelope = audio_envelope(path)
    fps = (decode_options or {}).get("fps", DEFAULT_FPS)
    duration = max(envelope.duration, envelope.declared or 0.0)
    grid = 1.0 / fps if fps else None
    return plan_chunks(envelope.rms, envelope.hop, duration, chunking, grid=grid), envelope.native_fps, duration
