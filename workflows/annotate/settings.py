"""The visual extractor of a prediction: a reused store's own settings, or several faces looked for.

A store that already holds visual streams of the videos is used with the settings that made them (so nothing is
re-extracted behind the user's back); a request that contradicts them is refused with one line naming the
difference. A new store looks for up to :data:`PREDICT_MAX_FACES` faces, so that the speaking one can be chosen.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from extractors.base import DEFAULT_EXTRACTORS, Extractor, create
from pipeline.store import FeatureStore
from pipeline.views import stream_settings

PREDICT_MAX_FACES = 4
"""Faces the visual extractor looks for when predicting into a new store."""


def _describe(name: str, config: dict) -> str:
    return f"{name} " + " ".join(f"{k}={v}" for k, v in sorted(config.items()) if k in ("fps", "max_faces"))


def visual_extractor(store: FeatureStore, video_ids: Iterable[str], *, backend: str | None = None,
                     max_faces: int | None = None) -> Extractor:
    """The visual extractor to predict ``video_ids`` with.

    Args:
        store: the store the prediction extracts into and reuses.
        video_ids: the videos to predict.
        backend: the visual extractor asked for (None: the store's, else the default).
        max_faces: faces to look for, when asked for explicitly (None: the store's, else :data:`PREDICT_MAX_FACES`).

    Raises:
        ValueError: the store's videos were extracted with settings that differ from one another or from
            ``backend`` / ``max_faces``; one line naming both.
    """
    made = {(name, json.dumps(config, sort_keys=True)) for name, config in
            stream_settings(store, "visual", video_ids).values()}
    if len(made) > 1:
        first, second = sorted(made)[:2]
        raise ValueError(f"{store.root}: [predict] its visual streams were extracted with different settings "
                         f"({_describe(first[0], json.loads(first[1]))} and "
                         f"{_describe(second[0], json.loads(second[1]))}): predict these videos into separate stores")
    if not made:
        name = backend or DEFAULT_EXTRACTORS["visual"]
        probe = create(name)
        faces = max_faces or PREDICT_MAX_FACES
        return create(name, max_faces=faces) if hasattr(probe.config, "max_faces") else probe
    name, config = next(iter(made))
    config = json.loads(config)
    wanted = {"backend": backend or name, "max_faces": max_faces or config.get("max_faces", 1)}
    asked = [f"{wanted['backend']}"] if wanted["backend"] != name else []
    asked += [f"max_faces={wanted['max_faces']}"] if wanted["max_faces"] != config.get("max_faces", 1) else []
    if asked:
        raise ValueError(f"{store.root}: [predict] its visual streams were extracted with "
                         f"{_describe(name, config)}, not {' '.join(asked)}: drop the option to use the store as it "
                         "is, or pass a new --store")
    return create(name, **config)
