"""The face landmarker's classes without the rest of MediaPipe, and all of MediaPipe after them (fresh processes:
this one may have imported mediapipe already)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mediapipe")
ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_landmarker_alone_leaves_matplotlib_and_the_other_tasks_unimported():
    out = _python("import sys\n"
                  "from extractors.mediapipe_api import face_landmarker_api\n"
                  "api = face_landmarker_api()\n"
                  "print(api.FaceLandmarker.__name__, api.RunningMode.IMAGE.name, api.ImageFormat.SRGB.name)\n"
                  "print(*(m in sys.modules for m in ('matplotlib', 'cv2', 'mediapipe.tasks.python.audio')))")
    assert out == ["FaceLandmarker", "IMAGE", "SRGB", "False", "False", "False"]


@pytest.mark.parametrize("plain_first", [False, True])
def test_a_plain_import_before_or_after_gets_the_same_classes(plain_first):
    plain = ("import mediapipe as mp\n"
             "from mediapipe.tasks.python import BaseOptions, vision\n")
    lean = ("from extractors.mediapipe_api import face_landmarker_api\n"
            "api = face_landmarker_api()\n")
    out = _python((plain + lean if plain_first else lean + plain) +
                  "from importlib import metadata\n"
                  "print(mp.Image is api.Image, vision.FaceLandmarker is api.FaceLandmarker, "
                  "vision.FaceLandmarkerOptions is api.FaceLandmarkerOptions, vision.RunningMode is api.RunningMode, "
                  "BaseOptions is api.BaseOptions, mp.__version__ == metadata.version('mediapipe'), "
                  "hasattr(vision, 'HandLandmarker'))")
    assert out == ["True"] * 7
