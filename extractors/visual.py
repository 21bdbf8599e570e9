"""Facial action units per sampled frame with MediaPipe's face landmarker (the default visual extractor).

Every visual extractor writes the same columns, one row per sampled frame:

* ``time`` float64: the frame's presentation time, seconds;
* ``face`` bool: whether a face was found (a frame without one is a row of zeros with ``face = false``);
* ``features`` fixed_size_list<float32>[n_AU]: AU intensities in [0, 1], named ``AU01`` .. in ``feature_names``;
* ``blendshapes`` fixed_size_list<float32>[52]: the raw blendshape scores (names in the schema metadata);
* ``pose`` fixed_size_list<float32>[3]: head yaw, pitch, roll in degrees (see :func:`pose_from_matrix`).

Frames are taken at ``config.fps`` (10 Hz by default) from those the decoder kept. The landmarker runs in IMAGE
mode: each frame on its own, so a video's features never depend on which video the same worker saw before
(VIDEO mode tracks across calls; it was ~20% faster, 5.0 vs 6.3 ms per 480x360 frame, not worth that).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from extractors.au_mapping import AU_NAMES, BLENDSHAPE_NAMES, blendshapes_to_aus
from extractors.base import Extractor, ExtractorConfig, Media, features_column, register
from extractors.media import DEFAULT_FPS
from pipeline.errors import StageError
from pipeline.files import sha256_file


@contextlib.contextmanager
def _native_stderr_silenced():
    """MediaPipe's C++ side writes a dozen INFO/WARNING lines to stderr whenever a landmarker starts, and no
    environment variable turns them off; failures still come back as Python exceptions."""
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)

POSE_NAMES = ("yaw", "pitch", "roll")


class VisualExtractor(Extractor):
    """The shared output of the visual extractors; subclasses fill :meth:`analyse`."""

    modality = "visual"

    @property
    def frame_shift(self) -> float | None:
        return 1.0 / self.config.fps if self.config.fps else None

    def schema(self) -> pa.Schema:
        fields = [pa.field("time", pa.float64()), pa.field("face", pa.bool_()),
                  pa.field("features", pa.list_(pa.float32(), self.feature_dim)),
                  pa.field("blendshapes", pa.list_(pa.float32(), len(BLENDSHAPE_NAMES))),
                  pa.field("pose", pa.list_(pa.float32(), len(POSE_NAMES)))]
        return pa.schema(fields, metadata=self.metadata())

    def metadata(self) -> dict[str, str]:
        """The base metadata plus the names of the ``blendshapes`` and ``pose`` entries."""
        return {**super().metadata(), "blendshape_names": json.dumps(list(BLENDSHAPE_NAMES)),
                "pose_names": json.dumps(list(POSE_NAMES))}

    def extract(self, media: Media) -> pa.Table:
        """One row per frame sampled at ``config.fps``; an empty table when the media has no video."""
        if not media.has_video:
            return self.schema().empty_table()
        keep = sample_frames(media.frame_times, self.config.fps)
        times = media.frame_times[keep]
        face, aus, blendshapes, pose = self.analyse(media.frames[keep], times, media.path)
        if not len(face) == len(aus) == len(blendshapes) == len(pose) == len(times):
            raise StageError(media.path, "visual", f"{self.name} gave {len(face)} results for {len(times)} frames; "
                                                   f"please report it")
        columns = [pa.array(times, pa.float64()), pa.array(face, pa.bool_()),
                   features_column(aus, self.feature_dim), features_column(blendshapes, len(BLENDSHAPE_NAMES)),
                   features_column(pose, len(POSE_NAMES))]
        return pa.table(columns, schema=self.schema())

    def analyse(self, frames: np.ndarray, times: np.ndarray, path: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(N, H, W, 3) uint8 RGB -> face (N,) bool, AUs (N, n_AU), blendshapes (N, 52), pose (N, 3)."""
        raise NotImplementedError


@dataclass(frozen=True)
class MediaPipeConfig(ExtractorConfig):
    """Options of the MediaPipe visual extractor."""

    fps: float | None = DEFAULT_FPS
    """Frames per second analysed (``None``: every decoded frame); also the decoder's sampling rate."""
    model_path: str | None = None
    """A ``face_landmarker.task`` file; default: the one ``extractors.assets.resolve_face_landmarker`` finds."""
    min_detection_confidence: float = 0.5
    """Face detector score below which a frame has no face."""
    min_presence_confidence: float = 0.5
    """Landmarker face-presence score below which a frame has no face."""


@register
class MediaPipeVisualExtractor(VisualExtractor):
    """MediaPipe face landmarker: 52 blendshapes -> AUs (``extractors.au_mapping``), pose from its 4x4 matrix."""

    name = "mediapipe"
    config_class = MediaPipeConfig

    def __init__(self, config: MediaPipeConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        self._landmarker = None
        self._model_file: Path | None = None
        self._identity: dict[str, str] | None = None

    @property
    def feature_names(self) -> list[str]:
        return list(AU_NAMES)

    def model_identity(self) -> dict[str, str]:
        import mediapipe

        if self._identity is None:  # hashed once: schema() asks for it on every extract()
            path = self._model()
            self._identity = {"mediapipe": mediapipe.__version__, "face_landmarker": path.name,
                              "face_landmarker_sha256": sha256_file(path)[:16]}
        return self._identity

    def _model(self) -> Path:
        if self._model_file is None:
            from extractors.assets import resolve_face_landmarker

            self._model_file = Path(resolve_face_landmarker(self.config.model_path))
        return self._model_file

    def landmarker(self):
        """The MediaPipe FaceLandmarker, created on first use and kept for this instance's lifetime."""
        if self._landmarker is None:
            from mediapipe.tasks.python import BaseOptions, vision

            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(self._model())),
                running_mode=vision.RunningMode.IMAGE, num_faces=1,
                min_face_detection_confidence=self.config.min_detection_confidence,
                min_face_presence_confidence=self.config.min_presence_confidence,
                output_face_blendshapes=True, output_facial_transformation_matrixes=True)
            with _native_stderr_silenced():
                self._landmarker = vision.FaceLandmarker.create_from_options(options)
            # Close before interpreter teardown: MediaPipe closes through a thread pool, which is gone by the time
            # ``atexit`` hooks or finalisers run. Threading's exit hooks run in reverse order, so this one runs
            # before the pool's own shutdown hook.
            this = weakref.ref(self)
            threading._register_atexit(lambda: this() is not None and this().close())
        return self._landmarker

    def analyse(self, frames, times, path):
        import mediapipe as mp

        n = len(frames)
        face = np.zeros(n, bool)
        blendshapes = np.zeros((n, len(BLENDSHAPE_NAMES)), np.float32)  # (N, 52)
        pose = np.zeros((n, len(POSE_NAMES)), np.float32)  # (N, 3)
        landmarker = self.landmarker()
        for i, frame in enumerate(frames):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
            result = landmarker.detect(image)
            if not result.face_blendshapes:
                continue
            scores = {c.category_name: c.score for c in result.face_blendshapes[0]}
            face[i] = True
            blendshapes[i] = [scores.get(name, 0.0) for name in BLENDSHAPE_NAMES]
            if result.facial_transformation_matrixes:
                pose[i] = pose_from_matrix(np.asarray(result.facial_transformation_matrixes[0]))
        return face, blendshapes_to_aus(blendshapes), blendshapes, pose

    def close(self) -> None:
        """Release the landmarker now (MediaPipe's own finaliser complains when it runs at interpreter exit)."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __getstate__(self):  # the landmarker is a native handle: rebuild it after pickling (Dask)
        return {**self.__dict__, "_landmarker": None}


def pose_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """(4, 4) face-to-camera transform -> (yaw, pitch, roll) degrees, with R = Rz(roll) Ry(yaw) Rx(pitch).

    MediaPipe's canonical face looks down +z with +y up, so a frontal, upright face is (0, 0, 0); yaw turns about
    the vertical axis, pitch nods about the ear-to-ear axis, roll tilts about the line of sight. Mirroring the
    image negates yaw and roll and keeps pitch.
    """
    r = np.asarray(matrix, np.float64)[:3, :3]
    r = r / np.cbrt(max(abs(np.linalg.det(r)), 1e-12))  # the landmarker's transform may carry a scale
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return np.degrees([yaw, pitch, roll]).astype(np.float32)


def sample_frames(times: np.ndarray, fps: float | None) -> np.ndarray:
    """Indices of the first frame at or after each instant ``k / fps`` (half a frame interval of slack)."""
    if fps is None or len(times) < 2:
        return np.arange(len(times))
    interval = float(np.median(np.diff(times)))
    slack = 0.5 * min(interval, 1.0 / fps)
    keep, next_time = [], 0.0
    for i, t in enumerate(times):
        if t >= next_time - slack:
            keep.append(i)
            while next_time - slack <= t:
                next_time += 1.0 / fps
    return np.asarray(keep, dtype=np.int64)
