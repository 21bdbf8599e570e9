"""Facial action units with py-feat's ``Detectorv1`` (RetinaFace + MobileFaceNet landmarks + XGBoost AUs).

py-feat fetches its weights from the Hugging Face hub (repositories ``py-feat/retinaface_r34``,
``py-feat/mobilefacenet``, ``py-feat/xgb_au``, optionally ``py-feat/pose_mlp_v2``) into its own resource folder.
This project never downloads at run time, so the detector is built with the hub in offline mode (py-feat's real
loading code, reading only the local cache); when the weights are absent the result is an
:class:`~pipeline.errors.AssetNotFoundError` that says where to put them. py-feat has no blendshapes: that column
is zeros. Its AU list (20 AUs) differs from the MediaPipe one (``extractors.au_mapping``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from extractors.base import ExtractorConfig, register
from extractors.media import DEFAULT_FPS
from extractors.visual import VisualExtractor
from pipeline.errors import AssetNotFoundError

PYFEAT_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12", "AU14", "AU15",
              "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43")
WEIGHT_REPOS = ("py-feat/retinaface_r34", "py-feat/mobilefacenet", "py-feat/xgb_au", "py-feat/pose_mlp_v2")


@dataclass(frozen=True)
class PyFeatConfig(ExtractorConfig):
    """Options of the py-feat visual extractor."""

    fps: float | None = DEFAULT_FPS
    """Frames per second analysed (``None``: every decoded frame)."""
    face_detection_threshold: float = 0.5
    """RetinaFace score below which a frame has no face."""
    batch_size: int = 8
    """Frames per forward pass (all frames of a video have one size, so they batch)."""
    allow_download: bool = False
    """Let py-feat fetch missing weights from the Hugging Face hub (off: this project works offline)."""


@register
class PyFeatVisualExtractor(VisualExtractor):
    """py-feat ``Detectorv1``: 20 AU intensities, head pose from its landmark-to-pose model."""

    name = "pyfeat"
    config_class = PyFeatConfig

    def __init__(self, config: PyFeatConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        self._detector = None

    @property
    def feature_names(self) -> list[str]:
        return list(PYFEAT_AUS)

    def model_identity(self) -> dict[str, str]:
        import feat

        return {"py-feat": feat.__version__, "detector": "Detectorv1(retinaface, mobilefacenet, xgb)"}

    def detector(self):
        """py-feat's detector, built on first use with its own loading code (offline unless allowed)."""
        if self._detector is None:
            self._detector = load_detector(allow_download=self.config.allow_download)
        return self._detector

    def analyse(self, frames, times, path):
        import torch

        detector = self.detector()
        images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8
        fex = detector.detect(images, data_type="tensor", batch_size=self.config.batch_size,
                              face_detection_threshold=self.config.face_detection_threshold, progress_bar=False)
        face, aus, pose = rows_from_fex(fex, len(frames), self.config.face_detection_threshold)
        return face, aus, np.zeros((len(frames), 52), np.float32), pose


    def __getstate__(self):  # ship the config, not the torch models (Dask); the detector reloads lazily
        return {**self.__dict__, "_detector": None}


def rows_from_fex(fex, n_frames: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """py-feat's per-face table (columns ``frame``, ``FaceScore``, AU01.., Yaw/Pitch/Roll) -> one row per frame.

    Returns face (N,) bool, AUs (N, 20), pose (N, 3) yaw/pitch/roll degrees; the most confident face of a frame
    wins, a frame without a face above ``threshold`` stays zeros, NaNs (pose without its model) become 0.
    """
    face = np.zeros(n_frames, bool)
    aus = np.zeros((n_frames, len(PYFEAT_AUS)), np.float32)  # (N, 20)
    pose = np.zeros((n_frames, 3), np.float32)  # (N, 3)
    found = fex[fex["FaceScore"].fillna(0) >= threshold]
    best = found.sort_values("FaceScore", ascending=False).drop_duplicates("frame")
    for _, row in best.iterrows():
        i = int(row["frame"])
        if not 0 <= i < n_frames:
            raise ValueError(f"py-feat reported frame {i} of {n_frames}")
        face[i] = True
        aus[i] = np.nan_to_num(row[list(PYFEAT_AUS)].to_numpy(np.float32))
        pose[i] = np.nan_to_num(row[["Yaw", "Pitch", "Roll"]].to_numpy(np.float32))
    return face, aus, pose


def load_detector(*, allow_download: bool = False):
    """``feat.Detectorv1`` with the AU models only; AssetNotFoundError when its weights are not cached."""
    import feat
    from feat.utils.io import get_resource_path
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    @contextlib.contextmanager
    def hub_offline():
        import torch

        previous, grad = constants.HF_HUB_OFFLINE, torch.is_grad_enabled()
        constants.HF_HUB_OFFLINE = previous or not allow_download
        try:
            yield
        finally:  # py-feat's constructor switches autograd off for the whole process; keep the caller's state
            constants.HF_HUB_OFFLINE = previous
            torch.set_grad_enabled(grad)

    try:
        with hub_offline():
            return feat.Detectorv1(face_model="retinaface", landmark_model="mobilefacenet", au_model="xgb",
                                   emotion_model=None, identity_model=None, gaze_model=None, device="cpu")
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as e:
        cache = get_resource_path()
        raise AssetNotFoundError(
            f"[visual] py-feat's detector weights are not available offline ({type(e).__name__}). py-feat reads "
            f"them from the Hugging Face cache in {cache}: on a machine with internet run "
            f"`huggingface-cli download <repo> --cache-dir {cache}` for each of {', '.join(WEIGHT_REPOS)} "
            f"and copy that folder here, or create the extractor with allow_download=True where downloading "
            f"is acceptable") from None
