"""From MediaPipe's 52 ARKit-style blendshapes to FACS action-unit intensities.

MediaPipe's face landmarker scores 52 blendshapes in [0, 1]; each is an Apple ARKit blendshape, and ARKit's
blendshapes were designed after FACS action units, most of them one AU split into a left and a right half. An AU
here is the mean of its halves (or the one blendshape it is), so it stays in [0, 1]. Only AUs with a blendshape
that moves the same muscle are listed; the reasoning for each row is in docs/features.md. AU11, AU23 (which
py-feat reports) have no blendshape and are left out rather than guessed.
"""
from __future__ import annotations

import numpy as np

# The order of MediaPipe face_landmarker.task's blendshape classifier output (index 0 is the neutral score).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)

# AU -> the blendshapes whose mean is its intensity (FACS names in docs/features.md).
AU_FROM_BLENDSHAPES: dict[str, tuple[str, ...]] = {
    "AU01": ("browInnerUp",),                                # inner brow raiser
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),         # outer brow raiser
    "AU04": ("browDownLeft", "browDownRight"),               # brow lowerer
    "AU05": ("eyeWideLeft", "eyeWideRight"),                 # upper lid raiser
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),         # cheek raiser
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),             # lid tightener
    "AU09": ("noseSneerLeft", "noseSneerRight"),             # nose wrinkler
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),       # upper lip raiser
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),           # lip corner puller
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),         # dimpler
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),           # lip corner depressor
    "AU16": ("mouthLowerDownLeft", "mouthLowerDownRight"),   # lower lip depressor
    "AU17": ("mouthShrugLower",),                            # chin raiser
    "AU18": ("mouthPucker",),                                # lip pucker
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),       # lip stretcher
    "AU22": ("mouthFunnel",),                                # lip funneler
    "AU24": ("mouthPressLeft", "mouthPressRight"),           # lip pressor
    "AU26": ("jawOpen",),                                    # jaw drop
    "AU28": ("mouthRollLower", "mouthRollUpper"),            # lip suck
    "AU34": ("cheekPuff",),                                  # cheek puff
    "AU43": ("eyeBlinkLeft", "eyeBlinkRight"),               # eyes closed
}
AU_NAMES: tuple[str, ...] = tuple(AU_FROM_BLENDSHAPES)


def _mapping_matrix() -> np.ndarray:
    """(52, n_AU) float32: column j averages the blendshapes of AU j."""
    index = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}
    matrix = np.zeros((len(BLENDSHAPE_NAMES), len(AU_NAMES)), np.float32)
    for j, sources in enumerate(AU_FROM_BLENDSHAPES.values()):
        for name in sources:
            matrix[index[name], j] = 1.0 / len(sources)
    return matrix


MAPPING_MATRIX = _mapping_matrix()


def blendshapes_to_aus(blendshapes: np.ndarray) -> np.ndarray:
    """(N, 52) blendshape scores -> (N, n_AU) AU intensities in [0, 1], columns named by ``AU_NAMES``."""
    if np.shape(blendshapes)[-1] != len(BLENDSHAPE_NAMES):
        raise ValueError(f"expected {len(BLENDSHAPE_NAMES)} blendshapes per row, got shape {np.shape(blendshapes)}")
    return np.asarray(blendshapes, np.float32) @ MAPPING_MATRIX
