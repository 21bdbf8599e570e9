"""The extractors of a prediction: the run's own, as they were configured, and a reused store's settings.

A prediction extracts new videos with the extractors the model was trained on, each with the config its training
store was extracted with (:func:`workflows.runs.trained_extractors`). A store that already holds streams of the
videos is used as it is (so nothing is re-extracted behind the user's back): its language and acoustic streams must
have been made with the run's configs, its visual ones with the run's options (``max_faces`` aside, the store's is
kept); anything else is refused with one line naming the difference. A new store looks for up to
:data:`PREDICT_MAX_FACES` faces, so that the speaking one can be chosen.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from extractors.base import DEFAULT_EXTRACTORS, Extractor, create
from pipeline.arrays import MODALITIES
from pipeline.store import FeatureStore
from pipeline.views import stream_settings

if TYPE_CHECKING:
    from workflows.runs import TrainedRun

PREDICT_MAX_FACES = 4
"""Faces the visual extractor looks for when predicting into a new store."""


def _describe(name: str, config: dict) -> str:
    return f"{name} " + " ".join(f"{k}={v}" for k, v in sorted(config.items()) if k in ("fps", "max_faces"))


def _options(config: str | None, chunking: str | None) -> dict[str, Any]:
    """A stream's options from the JSON of its config and its chunking (``chunking.seconds``...)."""
    return {**json.loads(config or "{}"), **{f"chunking.{k}": v for k, v in json.loads(chunking or "{}").items()}}


def _difference(made: dict, wanted: dict) -> tuple[str, str]:
    """The options of ``made`` and of ``wanted`` that differ, each as ``key=value`` (``key absent``), sorted."""
    keys = sorted(k for k in {**made, **wanted} if made.get(k, ...) != wanted.get(k, ...))
    shown = [" ".join(f"{k}={c[k]}" if k in c else f"{k} absent" for k in keys) for c in (made, wanted)]
    return shown[0], shown[1]


def visual_extractor(store: FeatureStore, video_ids: Iterable[str], *, backend: str | None = None,
                     max_faces: int | None = None, options: dict[str, Any] | None = None) -> Extractor:
    """The visual extractor to predict ``video_ids`` with.

    Args:
        store: the store the prediction extracts into and reuses.
        video_ids: the videos to predict.
        backend: the visual extractor asked for (None: the store's, else the default).
        max_faces: faces to look for, when asked for explicitly (None: the store's, else :data:`PREDICT_MAX_FACES`).
        options: the backend's other options, the model's (its run's record); None: the store's, else the defaults.

    Raises:
        ValueError: the store's videos were extracted with settings that differ from one another or from
            ``backend`` / ``max_faces`` / ``options``; one line naming both.
    """
    options = {k: v for k, v in (options or {}).items() if k != "max_faces"}
    made = {(name, json.dumps(config, sort_keys=True)) for name, config in
            stream_settings(store, "visual", video_ids).values()}
    if len(made) > 1:
        first, second = sorted(made)[:2]
        raise ValueError(f"{store.root}: [predict] its visual streams were extracted with different settings "
                         f"({_describe(first[0], json.loads(first[1]))} and "
                         f"{_describe(second[0], json.loads(second[1]))}): predict these videos into separate stores")
    if not made:
        name = backend or DEFAULT_EXTRACTORS["visual"]
        probe = create(name, **options)
        faces = max_faces or PREDICT_MAX_FACES
        return create(name, **options, max_faces=faces) if hasattr(probe.config, "max_faces") else probe
    name, config = next(iter(made))
    config = json.loads(config)
    wanted = {"backend": backend or name, "max_faces": max_faces or config.get("max_faces", 1)}
    asked = [f"{wanted['backend']}"] if wanted["backend"] != name else []
    asked += [f"max_faces={wanted['max_faces']}"] if wanted["max_faces"] != config.get("max_faces", 1) else []
    asked += [f"{k}={v}" for k, v in sorted(options.items()) if wanted["backend"] == name and config.get(k, ...) != v]
    if asked:
        raise ValueError(f"{store.root}: [predict] its visual streams were extracted with "
                         f"{_describe(name, config)}, not {' '.join(asked)}: drop the option to use the store as it "
                         "is, or pass a new --store")
    return create(name, **config)


def check_reused_streams(store: FeatureStore, video_ids: Iterable[str], extractors: Iterable[Extractor],
                         run: str) -> None:
    """The language and acoustic streams ``store`` already holds of ``video_ids`` were made by ``extractors``, with
    the chunking a prediction extracts with (the same name and stream config hash), since extraction would
    otherwise replace them without a word.

    Raises:
        ValueError: one line naming the first stream made otherwise, and the options that differ.
    """
    from workflows.extract import DEFAULT_CHUNKING, ExtractorSpec

    video_ids = list(video_ids)
    for e in extractors:
        if e.modality not in MODALITIES or e.modality == "visual":  # visual: visual_extractor; voice: not an input
            continue
        spec = ExtractorSpec.of(e, DEFAULT_CHUNKING)
        for vid in video_ids:
            info = store.stream_info(e.modality, vid)
            if info is None or (info.extractor == e.name and info.config_hash == spec.config_hash):
                continue
            made, wanted = info.extractor, e.name
            if made == wanted:  # the options that differ, and the cutting of long videos (audio streams)
                made, wanted = _difference(_options(info.metadata.get("config"), info.metadata.get("chunking")),
                                           _options(json.dumps(e.config_record()),
                                                    spec.chunking and spec.chunking.to_json()))
                made, wanted = f"{e.name} {made}", f"{e.name} {wanted}"
            raise ValueError(f"{store.root}: [predict] its {e.modality} stream of {vid!r} was extracted with "
                             f"{made}, not as the model of {run} takes it ({wanted}): pass a new --store to "
                             "extract these videos as the model's inputs were")


def prediction_extractors(trained: "TrainedRun", store: FeatureStore, video_ids: Iterable[str], *,
                          visual: str | None = None, max_faces: int | None = None,
                          log: Callable[[str], None]) -> list[Extractor]:
    """The extractors that predict ``video_ids`` into ``store`` for the model of ``trained``: those it was trained
    with, configured as they were (the default for a stream the run does not record, ``voice`` always), the
    visual one chosen with the store's settings (:func:`visual_extractor`; ``visual`` names another backend, with
    its default options); checked against the streams the store already holds (:func:`check_reused_streams`).

    Raises:
        ValueError: one line, when the run's record cannot be rebuilt or the store was extracted otherwise.
    """
    from workflows.extract import build_extractors
    from workflows.runs import trained_extractors

    video_ids = list(video_ids)
    recorded = trained_extractors(trained, log)
    trained_visual = recorded.get("visual")
    backend = visual or (trained_visual.name if trained_visual else None)
    options = trained_visual.config_record() if trained_visual and trained_visual.name == backend else None
    built = [visual_extractor(store, video_ids, backend=backend, max_faces=max_faces, options=options)
             if e.modality == "visual" else recorded.get(e.modality, e)
             for e in build_extractors({m: e.name for m, e in recorded.items() if m != "visual"})]
    check_reused_streams(store, video_ids, built, str(trained.run_dir))
    return built
