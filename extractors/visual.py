"""Facial action units per sampled frame with MediaPipe's face landmarker (the default visual extractor).

Every visual extractor writes the same columns, one row per sampled frame and face:

* ``time`` float64: the frame's presentation time, seconds;
* ``face`` bool: whether a face was found (a frame without one is a row of zeros with ``face = false``);
* ``face_id`` int32: the face's track id (0, 1, ... in order of appearance; -1 on a row without a face). With
  ``max_faces = 1`` it is 0 on every face row; with more, faces are tracked across frames (:func:`track_faces`) and
  a frame has one row per face found, sorted by ``face_id`` (or one no-face row);
* ``features`` fixed_size_list<float32>[n_AU]: AU intensities in [0, 1], named ``AU01`` .. in ``feature_names``;
* ``blendshapes`` fixed_size_list<float32>[52]: the raw blendshape scores (names in the schema metadata);
* ``pose`` fixed_size_list<float32>[3]: head yaw, pitch, roll in degrees (see :func:`pose_from_matrix`);
* ``box`` fixed_size_list<float32>[4] (``max_faces > 1`` only): the face's landmark box x0 y0 x1 y1, fractions of
  the frame (NaN on a no-face row).

Frames are taken at ``config.fps`` (10 Hz by default) from those the decoder kept. With ``max_faces = 1`` the
landmarker runs in IMAGE mode: each frame on its own, so a video's features never depend on which video the same
worker saw before (VIDEO mode tracks across calls; it was ~20% faster, 5.0 vs 6.3 ms per 480x360 frame, not worth
that). With more faces, each video gets a VIDEO-mode landmarker of its own (closed after it): it follows a face
from frame to frame by its landmarks, where IMAGE mode's detector missed one of two faces of 1/8 of the frame
width in 10-22% of the frames. Face ids come from :func:`track_faces` (landmark boxes) over the frames of one
``extract()`` call; the pipeline hands a video over in batches of frames and long videos in chunks, and renumbers
them from the stored boxes with one tracker over the whole video (:func:`extractors.face_tracks.retrack`).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pyarrow as pa

from extractors.au_mapping import AU_NAMES, BLENDSHAPE_NAMES, blendshapes_to_aus
from extractors.base import Extractor, ExtractorConfig, Media, features_column, register
from extractors.face_tracks import track_faces
from extractors.frame_sampling import sample_frames
from extractors.mediapipe_api import face_landmarker_api
from extractors.media import DEFAULT_FPS
from pipeline.errors import StageError
from pipeline.files import sha256_file, sha256_text


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


@dataclass
class FaceRows:
    """What a visual extractor found: one row per (frame, face), or one no-face row for a frame without a face.

    ``frame`` (R,) indexes the analysed frames, non-decreasing; ``face_id`` (R,) int32 (-1 without a face),
    increasing within a frame; ``face`` (R,) bool; ``aus`` (R, n_AU); ``blendshapes`` (R, 52); ``pose`` (R, 3).
    """

    frame: np.ndarray
    face_id: np.ndarray
    face: np.ndarray
    aus: np.ndarray
    blendshapes: np.ndarray
    pose: np.ndarray
    boxes: np.ndarray | None = None
    """(R, 4) each face's landmark box x0 y0 x1 y1 (fractions of the frame; NaN on no-face rows), kept when several
    faces are tracked: the ids are renumbered across batches and chunks from them (:mod:`extractors.face_tracks`)."""

    @classmethod
    def one_per_frame(cls, face, aus, blendshapes, pose) -> "FaceRows":
        """Rows of a single-face analysis: face id 0 where a face was found, -1 elsewhere."""
        face = np.asarray(face, bool)
        return cls(np.arange(len(face)), np.where(face, 0, -1).astype(np.int32), face, aus, blendshapes, pose)


class VisualExtractor(Extractor):
    """The shared output of the visual extractors; subclasses fill :meth:`analyse`."""

    modality = "visual"

    @property
    def frame_shift(self) -> float | None:
        return 1.0 / self.config.fps if self.config.fps else None

    def schema(self) -> pa.Schema:
        fields = [pa.field("time", pa.float64()), pa.field("face", pa.bool_()), pa.field("face_id", pa.int32()),
                  pa.field("features", pa.list_(pa.float32(), self.feature_dim)),
                  pa.field("blendshapes", pa.list_(pa.float32(), len(BLENDSHAPE_NAMES))),
                  pa.field("pose", pa.list_(pa.float32(), len(POSE_NAMES)))]
        if self.tracks_faces:
            fields.append(pa.field("box", pa.list_(pa.float32(), 4)))
        return pa.schema(fields, metadata=self.metadata())

    @property
    def tracks_faces(self) -> bool:
        """Whether several faces are tracked (a ``box`` column is then stored)."""
        return getattr(self.config, "max_faces", 1) > 1

    def metadata(self) -> dict[str, str]:
        """The base metadata plus the names of the ``blendshapes`` and ``pose`` entries."""
        return {**super().metadata(), "blendshape_names": json.dumps(list(BLENDSHAPE_NAMES)),
                "pose_names": json.dumps(list(POSE_NAMES))}

    def extract(self, media: Media) -> pa.Table:
        """One row per frame sampled at ``config.fps`` and face found; an empty table when the media has no video."""
        if not media.has_video:
            return self.schema().empty_table()
        keep = sample_frames(media.frame_times, self.config.fps, media.native_fps)
        times = media.frame_times[keep]
        rows = self.analyse_faces(media.frames[keep], times, media.path)
        n = len(rows.frame)
        if not len(rows.face_id) == len(rows.face) == len(rows.aus) == len(rows.blendshapes) == len(rows.pose) == n \
                or not np.array_equal(np.unique(rows.frame), np.arange(len(times))) or (np.diff(rows.frame) < 0).any():
            raise StageError(media.path, "visual", f"{self.name} gave {n} rows that do not cover its {len(times)} "
                                                   f"frames; please report it")
        columns = [pa.array(times[rows.frame], pa.float64()), pa.array(rows.face, pa.bool_()),
                   pa.array(rows.face_id, pa.int32()), features_column(rows.aus, self.feature_dim),
                   features_column(rows.blendshapes, len(BLENDSHAPE_NAMES)),
                   features_column(rows.pose, len(POSE_NAMES))]
        if self.tracks_faces:
            columns.append(features_column(rows.boxes, 4))
        return pa.table(columns, schema=self.schema())

    def analyse(self, frames: np.ndarray, times: np.ndarray, path: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(N, H, W, 3) uint8 RGB -> face (N,) bool, AUs (N, n_AU), blendshapes (N, 52), pose (N, 3) of one face."""
        raise NotImplementedError

    def analyse_faces(self, frames: np.ndarray, times: np.ndarray, path: str) -> FaceRows:
        """Every face of every frame; by default the one face of :meth:`analyse` per frame, with face id 0."""
        return FaceRows.one_per_frame(*self.analyse(frames, times, path))


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
    max_faces: int = 1
    """Faces looked for per frame (MediaPipe's ``num_faces``); above 1, faces are tracked across frames."""

    def __post_init__(self):
        if isinstance(self.max_faces, bool) or not isinstance(self.max_faces, int) or self.max_faces < 1:
            raise ValueError(f"max_faces must be a whole number >= 1, got {self.max_faces!r}")


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
        if self._identity is None:  # hashed once: schema() asks for it on every extract()
            path = self._model()
            self._identity = {"mediapipe": importlib_metadata.version("mediapipe"), "face_landmarker": path.name,
                              "face_landmarker_sha256": sha256_file(path)[:16]}
        return self._identity

    def _model(self) -> Path:
        if self._model_file is None:
            from extractors.assets import resolve_face_landmarker

            self._model_file = Path(resolve_face_landmarker(self.config.model_path))
        return self._model_file

    def _create_landmarker(self, mode: str):
        mp = face_landmarker_api()
        options = mp.FaceLandmarkerOptions(
            base_options=mp.BaseOptions(model_asset_path=str(self._model())),
            running_mode=getattr(mp.RunningMode, mode), num_faces=self.config.max_faces,
            min_face_detection_confidence=self.config.min_detection_confidence,
            min_face_presence_confidence=self.config.min_presence_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        with _native_stderr_silenced():
            return mp.FaceLandmarker.create_from_options(options)

    def load(self) -> None:
        """The schema, and the IMAGE-mode landmarker that one face per frame uses (VIDEO mode makes its own)."""
        super().load()
        if self.config.max_faces == 1:
            self.landmarker()

    def landmarker(self):
        """The MediaPipe FaceLandmarker (IMAGE mode), created on first use and kept until :meth:`close` (or the
        interpreter's exit: see ``_OPEN_LANDMARKERS``)."""
        if self._landmarker is None:
            self._landmarker = self._create_landmarker("IMAGE")
            _keep_open(self._landmarker)
        return self._landmarker

    def config_hash(self) -> str:
        """The base hash, leaving ``max_faces`` out at its default 1: that output is the output before the option
        existed plus ``face_id`` (0 where ``face``, else -1), which readers derive for older files, so stores keep
        their visual streams. (The blob is ``Extractor.config_hash``'s; tests/extractors/test_base.py pins it.)"""
        config = asdict(self.config)
        if config["max_faces"] != 1:  # boxes stored and ids renumbered across batches and chunks since this key
            blob = json.dumps({"name": self.name, "config": config, "face_tracks": "boxes"}, sort_keys=True,
                              default=str)
            return sha256_text(blob)[:16]
        del config["max_faces"]
        blob = json.dumps({"name": self.name, "config": config}, sort_keys=True, default=str)
        return sha256_text(blob)[:16]

    def detect(self, frames: np.ndarray, times: np.ndarray | None = None
               ) -> list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Per frame, the faces found, in MediaPipe's order: (box (4,) x0 y0 x1 y1 as fractions of the frame,
        blendshapes (52,), pose (3,)) each.

        Without ``times`` (or with ``max_faces = 1``) each frame is analysed on its own (IMAGE mode). With the
        frames' times (s, increasing) and ``max_faces > 1``, a landmarker of their own runs in VIDEO mode: a face
        found once is followed from its landmarks to the next frame, and the detector runs only while fewer than
        ``max_faces`` faces are followed (so a lone face is detected in every frame, exactly as in IMAGE mode).
        """
        mp = face_landmarker_api()
        video = times is not None and self.config.max_faces > 1
        landmarker, found, stamp = self._create_landmarker("VIDEO") if video else self.landmarker(), [], -1
        try:
            for i, frame in enumerate(frames):
                image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
                if video:
                    stamp = max(stamp + 1, int(round(float(times[i]) * 1000)))  # ms, strictly increasing
                    result = landmarker.detect_for_video(image, stamp)
                else:
                    result = landmarker.detect(image)
                found.append([_face(result, k) for k in range(len(result.face_blendshapes or []))])
        finally:
            if video:
                landmarker.close()
        return found

    def analyse(self, frames, times, path):
        """The first face MediaPipe reports in each frame (the only one with ``max_faces = 1``)."""
        n = len(frames)
        face = np.zeros(n, bool)
        blendshapes = np.zeros((n, len(BLENDSHAPE_NAMES)), np.float32)  # (N, 52)
        pose = np.zeros((n, len(POSE_NAMES)), np.float32)  # (N, 3)
        for i, faces in enumerate(self.detect(frames)):
            if faces:
                face[i], blendshapes[i], pose[i] = True, faces[0][1], faces[0][2]
        return face, blendshapes_to_aus(blendshapes), blendshapes, pose

    def analyse_faces(self, frames, times, path):
        """``max_faces = 1``: :meth:`analyse` with face id 0; more: every face, tracked (:func:`track_faces`)."""
        if self.config.max_faces == 1:
            return super().analyse_faces(frames, times, path)
        found = self.detect(frames, times)
        ids = track_faces([np.array([box for box, _, _ in faces]).reshape(-1, 4) for faces in found], times)
        frame, face_id, blendshapes, pose, boxes = [], [], [], [], []
        for i, (faces, track) in enumerate(zip(found, ids)):
            if not faces:
                faces, track = [(np.full(4, np.nan), np.zeros(len(BLENDSHAPE_NAMES), np.float32),
                                 np.zeros(len(POSE_NAMES), np.float32))], np.array([-1])
            for k in np.argsort(track, kind="stable"):
                frame.append(i)
                face_id.append(track[k])
                boxes.append(faces[k][0])
                blendshapes.append(faces[k][1])
                pose.append(faces[k][2])
        blendshapes = np.stack(blendshapes).astype(np.float32)  # (R, 52)
        face_id = np.asarray(face_id, np.int32)
        return FaceRows(np.asarray(frame, np.int64), face_id, face_id >= 0, blendshapes_to_aus(blendshapes),
                        blendshapes, np.stack(pose).astype(np.float32), np.stack(boxes).astype(np.float32))

    def close(self) -> None:
        """Release the landmarker now."""
        if self._landmarker is not None:
            _OPEN_LANDMARKERS.pop(id(self._landmarker), None)
            self._landmarker.close()
            self._landmarker = None

    def __getstate__(self):  # the landmarker is a native handle: rebuild it after pickling (Dask)
        return {**self.__dict__, "_landmarker": None}


# MediaPipe's FaceLandmarker closes itself in ``__del__`` through its own thread pool, and waits for it: run by
# the garbage collector at an arbitrary point of another thread (a cycle collected in the middle of argparse, in
# the test suite), that wait never ended. So no open landmarker is left to the collector: each one is held here
# until its extractor's ``close()``, or closed by one exit hook. Threading's exit hooks run in reverse order of
# registration, so the hook runs before the pools' own shutdown (after which MediaPipe cannot close at all).
_OPEN_LANDMARKERS: dict[int, object] = {}
_OPEN_LOCK = threading.Lock()


def _close_open_landmarkers() -> None:
    with _OPEN_LOCK:
        landmarkers = list(_OPEN_LANDMARKERS.values())
        _OPEN_LANDMARKERS.clear()
    for landmarker in landmarkers:
        landmarker.close()


def _keep_open(landmarker) -> None:
    with _OPEN_LOCK:
        if not _OPEN_LANDMARKERS:
            threading._register_atexit(_close_open_landmarkers)
        _OPEN_LANDMARKERS[id(landmarker)] = landmarker


def _face(result, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face ``k`` of a FaceLandmarkerResult: landmark box (4,), blendshape scores (52,), pose (3,)."""
    scores = {c.category_name: c.score for c in result.face_blendshapes[k]}
    points = np.array([(p.x, p.y) for p in result.face_landmarks[k]], np.float64).reshape(-1, 2)
    box = np.concatenate([points.min(0), points.max(0)]) if len(points) else np.zeros(4)
    pose = np.zeros(len(POSE_NAMES), np.float32)
    if k < len(result.facial_transformation_matrixes or []):
        pose = pose_from_matrix(np.asarray(result.facial_transformation_matrixes[k]))
    return box, np.array([scores.get(name, 0.0) for name in BLENDSHAPE_NAMES], np.float32), pose


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
