"""On a worker: decode one time window of a video once and run the extractors on it, in bounded memory.

The frames never pile up: the decoder hands them to the visual extractor in batches of ``batch_frames`` while it
goes on decoding, and only the audio of the window (4 bytes per sample: 2 MB for 30 s) is kept for the audio
streams. A window is a whole short video, or one chunk of a long one (:mod:`workflows.extract.chunks`). The
extractors are the worker's own (:func:`workflows.extract.worker.worker_extractor`), one call of each at a time.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from extractors.base import Extractor, Media
from extractors.face_tracks import FaceTracker, retrack
from workflows.extract.worker import ExtractorSpec, locked, worker_extractor

@dataclass
class WindowResult:
    """The streams of one window: tables and metadata by modality, errors by modality, and what was decoded."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per modality, and "decode"
    end: float = 0.0  # where the decoded window ends (the video's duration for the last window)
    native_fps: float | None = None
    warnings: list[str] = field(default_factory=list)  # a missing audio or video track (Media.warnings)


def extract_window(path: str, specs: list[ExtractorSpec], *, start: float = 0.0, end: float | None = None,
                   decode_options: dict[str, Any] | None = None, margin: float = 0.0,
                   batch_frames: int = 50) -> WindowResult:
    """Decode ``[start, end)`` of ``path`` once and run every spec's extractor on it.

    ``margin``: audio decoded on both sides for the frame-based audio streams (acoustic, voice), whose rows outside
    the window are then dropped; the language stream gets exactly the window. Extractor failures are recorded per
    modality; a decoding failure raises (:class:`pipeline.errors.MediaError`, stage ``decode``).
    """
    from extractors.media import decode

    out = WindowResult()
    extractors: dict[str, Extractor] = {}
    for spec in specs:
        try:
            extractors[spec.modality], created = worker_extractor(spec)
        except Exception as exc:
            out.errors[spec.modality] = f"{type(exc).__name__}: {exc}"
            continue
        if created:
            out.loads.append(spec.name)
        out.seconds[spec.modality] = 0.0
    visual = extractors.get("visual")
    pieces: list[pa.Table] = []
    faces = FaceTracker()  # one face numbering for every batch of frames of the window

    def analyse(piece: Media) -> None:
        if "visual" in out.errors:
            return
        began = time.perf_counter()
        try:
            with locked(visual):
                pieces.append(retrack(visual.extract(piece), faces))
        except Exception as exc:
            out.errors["visual"] = _message(exc)
        out.seconds["visual"] += time.perf_counter() - began

    audio_margin = margin if any(m != "visual" and e.frame_shift and e.chunk_margin
                                 for m, e in extractors.items()) else 0.0
    lo = max(start - audio_margin, 0.0)
    hi = None if end is None else end + audio_margin
    began = time.perf_counter()
    # no extractor at all: decoded (frames dropped at once) only for the duration
    sink = analyse if visual is not None else (lambda piece: None) if not specs else None
    media = decode(path, **(decode_options or {}), start=lo, end=hi, frame_window=(start, end),
                   video=sink is not None, on_frames=sink, batch_frames=batch_frames, warn=False)
    out.seconds["decode"] = time.perf_counter() - began - out.seconds.get("visual", 0.0)
    out.end, out.native_fps, out.warnings = media.start + media.duration, media.native_fps, list(media.warnings)
    spec_of = {s.modality: s for s in specs}
    shared = {name: {} for extractor in extractors.values() for name in extractor.reuses}  # Extractor.extract_shared
    for modality, extractor in sorted(extractors.items(), key=lambda item: bool(item[1].reuses)):  # producers first
        if modality in out.errors:
            continue
        began = time.perf_counter()
        try:
            with locked(extractor):
                if modality == "visual":
                    table = pa.concat_tables(pieces) if pieces else extractor.extract(_no_frames(media))
                elif extractor.frame_shift and extractor.chunk_margin and (lo < start or hi is not None):
                    table = _frames_in(extractor.extract_shared(_on_grid(media, extractor.frame_shift), shared),
                                       start, end)
                else:
                    table = extractor.extract_shared(media.crop(start, end) if (lo, hi) != (start, end) else media,
                                                     shared)
                    if extractor.frame_shift and (start > 0 or end is not None):  # a row of a span across the cut
                        table = _frames_in(table, start, end)
            out.tables[modality] = table
            out.metadata[modality] = spec_of[modality].metadata(extractor)
        except Exception as exc:  # record it, go on with the other modalities of this window
            out.errors[modality] = _message(exc)
        out.seconds[modality] += time.perf_counter() - began
    return out


def _message(exc: Exception) -> str:
    from pipeline.errors import StageError

    return exc.message if isinstance(exc, StageError) else f"{type(exc).__name__}: {exc}"


def _no_frames(media: Media) -> Media:
    return Media(media.path, media.duration, media.audio[:0], media.sample_rate, media.frames[:0],
                 media.frame_times[:0], media.native_fps, list(media.warnings), start=media.start)


def _on_grid(media: Media, hop: float) -> Media:
    """The media from the first multiple of ``hop`` on, so that frame times ``start + k hop`` are the video's grid."""
    first = math.ceil(media.start / hop - 1e-9) * hop
    return media.crop(first, None) if first > media.start + 1e-9 else media


def _frames_in(table: pa.Table, start: float, end: float | None) -> pa.Table:
    """Rows whose ``time`` lies in ``[start, end)`` (a tolerance of 1 us: neighbouring windows share a bound)."""
    time_column = table.column("time")
    keep = pc.greater_equal(time_column, start - 1e-6)
    if end is not None:
        keep = pc.and_(keep, pc.less(time_column, end - 1e-6))
    return table.filter(keep)
