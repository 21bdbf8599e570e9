"""MediaPipe's face landmarker, imported without the rest of MediaPipe.

``import mediapipe`` runs ``mediapipe/__init__.py``, which imports every task (audio, text, vision), and the vision
package imports its drawing utilities, which import matplotlib.pyplot and cv2: 0.48 CPU s of imports that hold the
GIL, where the modules the face landmarker needs take 0.13 s (2-core Xeon, 2026-12-05). In a worker's start-up they
run beside torch's import and slow it, so a 1-s clip paid them in full.

:func:`face_landmarker_api` imports those modules under the packages ``mediapipe``, ``mediapipe.tasks``,
``mediapipe.tasks.python`` and ``mediapipe.tasks.python.vision`` created from their specs but not yet run. Each
such package runs its own ``__init__`` the first time an attribute it does not have yet is asked for (``mp.Image``,
``vision.FaceLandmarkerOptions``), so a plain ``import mediapipe`` later in the process still gets all of MediaPipe,
with the same module and class objects.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from dataclasses import dataclass

PACKAGES = ("mediapipe", "mediapipe.tasks", "mediapipe.tasks.python", "mediapipe.tasks.python.vision")
_LOCK = threading.RLock()
_API: "FaceLandmarkerAPI | None" = None


@dataclass(frozen=True)
class FaceLandmarkerAPI:
    """What :mod:`extractors.visual` uses of MediaPipe (the names of ``mediapipe.tasks.python.vision``)."""
    BaseOptions: type
    FaceLandmarker: type
    FaceLandmarkerOptions: type
    RunningMode: type
    Image: type
    ImageFormat: type


class _DeferredPackage(types.ModuleType):
    """A package whose ``__init__`` runs on the first attribute it lacks (its submodules are bound as they load)."""

    def __getattr__(self, attr: str):
        with _LOCK:
            if isinstance(self, _DeferredPackage):
                self.__class__ = types.ModuleType
                self.__spec__.loader.exec_module(self)
        return getattr(self, attr)


def _deferred_package(name: str) -> types.ModuleType:
    """``name``'s package module from its spec, its ``__init__`` not run, in ``sys.modules`` (unless already)."""
    if name in sys.modules:
        return sys.modules[name]
    parent, _, _ = name.rpartition(".")
    spec = (importlib.machinery.PathFinder.find_spec(name, sys.modules[parent].__path__) if parent
            else importlib.util.find_spec(name))
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"no package {name!r}: is mediapipe installed? (pip install mediapipe)", name=name)
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredPackage
    sys.modules[name] = module
    if parent:
        setattr(sys.modules[parent], name.rpartition(".")[2], module)
    return module


def face_landmarker_api() -> FaceLandmarkerAPI:
    """MediaPipe's face landmarker classes, importing only the modules they live in (once per process)."""
    global _API
    with _LOCK:
        if _API is None:
            for name in PACKAGES:
                _deferred_package(name)
            vision = "mediapipe.tasks.python.vision"
            landmarker = importlib.import_module(f"{vision}.face_landmarker")
            image = importlib.import_module(f"{vision}.core.image")
            _API = FaceLandmarkerAPI(
                BaseOptions=importlib.import_module("mediapipe.tasks.python.core.base_options").BaseOptions,
                FaceLandmarker=landmarker.FaceLandmarker, FaceLandmarkerOptions=landmarker.FaceLandmarkerOptions,
                RunningMode=importlib.import_module(f"{vision}.core.vision_task_running_mode").VisionTaskRunningMode,
                Image=image.Image, ImageFormat=image.ImageFormat)
        return _API
