"""Active speaker choice on real media.

Two-speaker compositions (:mod:`tests.workflows.annotate.compositions`): two different CREMA-D clips side by side or
stacked, both mouths moving, the audio of either; the speaking face must be named in >= 95% of the rows.

A still face beside a talking one, built here with FFmpeg: six CREMA-D takes (all "Don't forget a jacket") played one after the other in
3-second slots (the last frame held and silence after each take) next to a still frame of another take; once with
the talking face on the left and once on the right. The segments are the slots.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from extractors import create
from extractors.au_mapping import BLENDSHAPE_NAMES
from extractors.base import features_column
from extractors.media import decode
from pipeline.store import FeatureStore, feature_matrix
from pipeline.views import SegmentDataset, face_ids
from tests.extractors.media_files import cremad_clips
from tests.pipeline.streams import meta
from workflows.annotate.faces import COLUMNS, SpeakerConfig, choose_faces, speaker_scores, synchrony, voice_level

SLOT = 3.0  # seconds per take: the longest take is 2.34 s, so each is followed by >= 0.66 s of silence
TAKES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def side_by_side(folder, clips) -> dict[str, str]:
    """Two 640x240 videos with 16 kHz AAC audio: the takes in slots on one side, a still frame on the other."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    still = folder / "still.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "0.1", "-i", str(clips["NEU"]), "-frames:v", "1",
                    str(still)], check=True)
    inputs, chain = [], []
    for i, take in enumerate(TAKES):
        inputs += ["-i", str(clips[take])]
        chain.append(f"[{i}:v:0]fps=25,scale=320:240,setsar=1,format=yuv420p,tpad=stop_mode=clone:stop_duration="
                     f"{SLOT},trim=duration={SLOT},setpts=PTS-STARTPTS[v{i}];[{i}:a:0]aresample=16000,"
                     f"aformat=channel_layouts=mono,apad,atrim=duration={SLOT},asetpts=PTS-STARTPTS[a{i}]")
    n, total = len(TAKES), SLOT * len(TAKES)
    chain.append("".join(f"[v{i}][a{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=1[talk][audio]")
    chain.append(f"[{n}:v]scale=320:240,setsar=1,format=yuv420p,trim=duration={total}[still]")
    chain.append("[talk]split[t1][t2];[still]split[s1][s2];[audio]asplit[a1][a2]")
    chain.append("[t1][s1]hstack=inputs=2[left];[s2][t2]hstack=inputs=2[right]")
    paths = {side: str(folder / f"talking_{side}.mp4") for side in ("left", "right")}
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-c:a", "aac", "-t", str(total)]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-loop", "1", "-framerate", "25", "-i", str(still),
                    "-filter_complex", ";".join(chain), "-map", "[left]", "-map", "[a1]", *encode, paths["left"],
                    "-map", "[right]", "-map", "[a2]", *encode, paths["right"]], check=True)
    return paths


@pytest.fixture(scope="module")
def arrangements(tmp_path_factory):
    """{side: (store, video_id, visual table)} for the talking face on the left and on the right."""
    folder = tmp_path_factory.mktemp("speaker")
    paths = side_by_side(folder, cremad_clips())
    visual, acoustic, voice = create("mediapipe", max_faces=2), create("librosa"), create("silero-vad")
    store, out = FeatureStore(folder / "store"), {}
    try:
        for side, path in paths.items():
            media = decode(path)
            table = visual.extract(media)
            store.write_stream("visual", side, table)
            store.write_stream("acoustic", side, acoustic.extract(media))
            store.write_stream("voice", side, voice.extract(media))
            out[side] = (store, side, table)
    finally:
        visual.close()
    return out


def _slots(video_id: str) -> pd.DataFrame:
    return pd.DataFrame({"video_id": video_id, "segment_id": [f"{video_id}_{t}" for t in TAKES],
                         "start": SLOT * np.arange(len(TAKES)), "end": SLOT * np.arange(1, len(TAKES) + 1),
                         "split": None})


def _talking_face(table: pa.Table) -> int:
    """The track of the talking side, known without the audio: the other side is one frame repeated, so its
    track's blendshapes barely move (VIDEO mode's landmark jitter only) while a talking face's do."""
    ids, shapes = face_ids(table), feature_matrix(table, "blendshapes")
    spread = {int(f): shapes[ids == f].std(axis=0).mean() for f in np.unique(ids[ids >= 0])}
    return max(spread, key=spread.get)


@pytest.mark.slow
@pytest.mark.parametrize("side", ["left", "right"])
def test_two_stable_face_tracks(arrangements, side):
    store, vid, table = arrangements[side]
    ids = face_ids(table)
    assert sorted(np.unique(ids[ids >= 0]).tolist()) == [0, 1], "two tracks, numbered 0 and 1"
    times = table.column("time").to_numpy()
    counts = pd.Series(ids[ids >= 0]).value_counts()
    assert (counts >= 0.75 * len(np.unique(times))).all(), counts.to_dict()
    for t in np.unique(times):  # never the same face twice in a frame, rows sorted by face_id
        assert np.all(np.diff(ids[times == t]) > 0)
    # the ids never swap sides: the still side's track keeps its mouth as it is from the first frame to the last
    # (one talking frame in it, jaw ~0.3 open, would add ~0.02 to its std)
    jaw = feature_matrix(table, "blendshapes")[:, BLENDSHAPE_NAMES.index("jawOpen")]
    talking = _talking_face(table)
    assert talking == {"left": 0, "right": 1}[side], "both faces are found in the first frame: ids left to right"
    assert jaw[ids == 1 - talking].std() < 0.015 < 0.05 < jaw[ids == talking].std()  # measured 0.006-0.008, 0.11


@pytest.mark.slow
@pytest.mark.parametrize("side", ["left", "right"])
def test_the_talking_side_is_chosen(arrangements, side):
    store, vid, table = arrangements[side]
    talking = _talking_face(table)
    chosen = choose_faces(store, _slots(vid))
    assert list(chosen.columns) == list(COLUMNS)
    accuracy = (chosen["face_id"] == talking).mean()
    every = speaker_scores(store, _slots(vid))
    print(f"\n{side}: talking face {talking}, accuracy {accuracy:.2f}\n{every.to_string()}")
    assert accuracy >= 0.9, every
    assert (chosen["face_share"] > 0.5).all() and (chosen["face_share"] <= 1).all()
    # the dataset then serves only the talking face's rows of each slot
    data = SegmentDataset(store, segments=chosen.merge(_slots(vid)), modalities=["visual", "acoustic"])
    ids, times = face_ids(table), table.column("time").to_numpy()
    first = data[0]
    want = ((ids == chosen["face_id"][0]) | (ids == -1)) & (times < SLOT)
    assert first["visual_length"] == want.sum()


# ------------------------------------------------------------------------------------------ hand-made streams
def _visual(times: np.ndarray, ids: np.ndarray, jaw: np.ndarray) -> pa.Table:
    """A MediaPipe-like visual stream: blendshapes all zero but jawOpen."""
    shapes = np.zeros((len(times), len(BLENDSHAPE_NAMES)), np.float32)
    shapes[:, BLENDSHAPE_NAMES.index("jawOpen")] = jaw
    metadata = {**meta("visual", 2, 0.1), "blendshape_names": json.dumps(list(BLENDSHAPE_NAMES))}
    return pa.table({"time": pa.array(times, pa.float64()), "face": pa.array(ids >= 0),
                     "face_id": pa.array(ids, pa.int32()), "features": features_column(np.zeros((len(times), 2)), 2),
                     "blendshapes": features_column(shapes, len(BLENDSHAPE_NAMES))}).replace_schema_metadata(
        {k.encode(): v.encode() for k, v in metadata.items()})


@pytest.fixture
def two_faces(tmp_path) -> FeatureStore:
    """4 s at 10 Hz: face 0 opens its mouth with the sound (a 2 Hz syllable rhythm), face 1 moves its mouth as
    much but out of step with it; from 3 s face 1 is gone; the voice stream's level at 100 Hz."""
    rng = np.random.default_rng(1)
    t = 0.1 * np.arange(40)
    loud = (np.sin(2 * np.pi * 2 * t) > 0).astype(float)
    jaw0 = 0.05 + 0.3 * loud + rng.normal(0, 0.02, len(t))
    jaw1 = 0.05 + 0.3 * rng.permutation(loud) + rng.normal(0, 0.02, len(t))
    times = np.repeat(t, 2)
    ids = np.tile([0, 1], len(t))
    jaw = np.stack([jaw0, jaw1], 1).reshape(-1)
    keep = ~((ids == 1) & (times >= 2.95))
    store = FeatureStore(tmp_path / "store")
    store.write_stream("visual", "v", _visual(times[keep], ids[keep], jaw[keep]))
    a_times = 0.01 * np.arange(400)
    level = np.where(np.sin(2 * np.pi * 2 * a_times) > 0, -20.0, -100.0)  # digital silence between syllables
    voice = pa.table({"time": a_times, "features": features_column(np.stack([level, level > -50], 1), 2)})
    store.write_stream("voice", "v", voice, {**meta("voice", 2, 0.01), "feature_names": '["level_db", "speech"]'})
    return store


def _segments(*windows) -> pd.DataFrame:
    return pd.DataFrame({"video_id": "v", "segment_id": [f"s{i}" for i in range(len(windows))],
                         "start": [w[0] for w in windows], "end": [w[1] for w in windows]})


def test_the_face_in_step_with_the_sound_wins(two_faces):
    chosen = choose_faces(two_faces, _segments((0.0, 2.0), (1.0, 3.0), (3.0, None)))
    assert chosen["face_id"].tolist() == [0, 0, 0]
    assert chosen["face_share"].tolist() == [1.0, 1.0, 1.0]
    every = speaker_scores(two_faces, _segments((0.0, 2.0)))
    assert every["face_id"].tolist() == [0, 1]
    talking, other = every["speaker_score"]
    assert talking > 0.8 and talking - other > 0.5, every


def test_no_face_no_audio_and_words(two_faces, tmp_path):
    after = choose_faces(two_faces, _segments((10.0, 12.0)))  # past the end: no frame at all
    assert after["face_id"].tolist() == [-1] and after["face_share"].tolist() == [0.0]
    assert np.isnan(after["speaker_score"][0])
    # without a voice stream no face has a score: the face seen longest wins
    silent = FeatureStore(tmp_path / "silent")
    silent.write_stream("visual", "v", two_faces.read_stream("visual", ["v"]).drop(["video_id"]).
                        replace_schema_metadata({k.encode(): v.encode()
                                                 for k, v in two_faces.stream_metadata("visual", "v").items()}))
    chosen = choose_faces(silent, _segments((2.0, 4.0)))
    assert chosen["face_id"].tolist() == [0] and np.isnan(chosen["speaker_score"][0])
    assert chosen["face_share"][0] == 1.0 and chosen["speaker_uncertain"][0]  # two faces, no score: say so
    # a voice given by the caller is used instead of the voice stream
    t = 0.01 * np.arange(400)
    flipped = {"v": (t, np.where(np.sin(2 * np.pi * 2 * t) > 0, -100.0, -20.0))}  # loud where face 0 is closed
    assert choose_faces(two_faces, _segments((0.0, 2.0)), voices=flipped,
                        config=SpeakerConfig(context=0.0, max_lag=0.0))["face_id"].tolist() == [1]


def test_synchrony_ignores_a_still_mouth():
    rng = np.random.default_rng(0)
    energy = np.where(np.arange(30) % 6 < 3, -20.0, -100.0)
    still = 0.1 + rng.normal(0, 0.001, 30)
    still[np.argsort(energy)] = np.sort(still)  # a still mouth whose noise happens to follow the sound exactly
    talking = np.where(energy > -50, 0.3, 0.05) + rng.normal(0, 0.12, 30)
    assert np.corrcoef(still, energy)[0, 1] > np.corrcoef(talking, energy)[0, 1]  # Pearson r alone is fooled
    assert synchrony(talking, [energy]) > 0.3 > 0.1 > synchrony(still, [energy])
    assert np.isnan(synchrony(talking[:3], [energy[:3]])) and np.isnan(synchrony(talking, [np.full(30, -20.0)]))
    assert synchrony(talking, [np.roll(energy, 3), energy]) == synchrony(talking, [energy])  # the best lag counts


def test_voice_level_averages_the_envelope_around_each_time():
    times, level = 0.01 * np.arange(100), np.arange(100, dtype=float)
    got = voice_level(times, level, np.array([0.0, 0.5, 5.0]), 0.1)
    np.testing.assert_allclose(got, [np.mean(level[:5]), np.mean(level[45:55]), level[-1]])
    assert np.isnan(voice_level(np.zeros(0), np.zeros(0), np.array([1.0]), 0.1)).all()


@pytest.mark.slow
def test_face_ids_hold_across_batches_and_chunks_of_the_pipeline(arrangements, tmp_path):
    """Through ``extract_corpus``: the right-hand (talking) face alone for 3 s, then both; 18 s cut into 6-s chunks,
    each decoded in batches of 50 frames (5 s at 10 fps). The right face is track 0 from the start and must stay 0:
    numbered batch by batch, it became 1 at 5 s (both faces in view: left to right) and at every chunk after."""
    import distributed

    from pipeline.manifest import VideoSource
    from workflows.extract import extract_corpus
    from workflows.extract.chunks import ChunkConfig

    store, _, _ = arrangements["right"]
    path = tmp_path / "right_first.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(Path(store.root).parent / "talking_right.mp4"), "-vf",
                    "drawbox=x=0:y=0:w=iw/2:h=ih:color=black:t=fill:enable='lt(t,3)'", "-c:v", "libx264",
                    "-preset", "veryfast", "-c:a", "copy", str(path)], check=True)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        summary = extract_corpus([VideoSource("right", str(path))], tmp_path / "store", client=client,
                                 extractors=[create("mediapipe", max_faces=2), create("librosa")], progress=False,
                                 chunking=ChunkConfig(seconds=6.0))
    assert summary.done == 1, summary.failures
    table = FeatureStore(tmp_path / "store").read_stream("visual", ["right"])
    ids, times = face_ids(table), table.column("time").to_numpy()
    boxes = np.asarray(table["box"].combine_chunks().values).reshape(len(table), 4)
    right = (ids >= 0) & ((boxes[:, 0] + boxes[:, 2]) / 2 > 0.5)
    assert times.max() > 12.5 and right[times < 3].any() and not ((ids >= 0) & ~right)[times < 2.5].any()
    assert set(ids[right].tolist()) == {0}, "the right face keeps the id it got first"
    assert set(ids[(ids >= 0) & ~right].tolist()) == {1}, "the left face, seen second, is 1 all along"
    for t in np.unique(times):
        assert np.all(np.diff(ids[times == t]) > 0)
