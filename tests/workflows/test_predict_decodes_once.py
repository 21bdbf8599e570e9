"""Issue 18, item 6: `mcr predict` decodes each video once. The speech and loudness its rows are cut from (the voice
stream, ``extractors.voice``) are computed from the audio the extraction decoded; a store made before that stream
existed gets it, alone, from one more decode of the audio, and keeps its other streams as they are."""
from __future__ import annotations

import os
from collections import Counter

import pandas as pd
import pytest

from tests.extractors.media_files import cremad_clips
from tests.workflows.synthetic import write_config, write_random_pickle
from workflows.cli import main as mcr


@pytest.fixture
def decodes(monkeypatch) -> Counter:
    """Calls of ``extractors.media.decode`` by real path (the real decoder runs; the workers are threads of this
    process, tests/conftest.py)."""
    import extractors.media

    calls, real = Counter(), extractors.media.decode

    def counting(path, *args, **kwargs):
        calls[os.path.realpath(path)] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(extractors.media, "decode", counting)
    return calls


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny model that takes the default extractors' streams."""
    from extractors.base import DEFAULT_EXTRACTORS, create

    folder = tmp_path_factory.mktemp("decode_once")
    dims = tuple(create(DEFAULT_EXTRACTORS[m]).feature_dim for m in ("language", "visual", "acoustic"))
    assert mcr(["train", "--data", str(write_random_pickle(folder, dims)), "--config",
                str(write_config(folder, epochs=1)), "--out", str(folder / "run"), "--no-progress"]) == 0
    return folder / "run"


@pytest.mark.slow
def test_predict_decodes_each_video_once_even_into_a_store_without_a_voice_stream(run, tmp_path, decodes):
    from pipeline.store import FeatureStore

    clip = os.path.realpath(cremad_clips()["ANG"])
    out, store = tmp_path / "emotions.csv", tmp_path / "store"
    args = ["predict", clip, "--model", str(run), "--out", str(out), "--store", str(store), "--workers", "1",
            "--no-progress"]
    assert mcr(args) == 0
    assert decodes == {clip: 1}, decodes
    rows = pd.read_csv(out)
    assert (rows["status"] == "ok").all() and rows["speech_share"].gt(0).any()

    # a store of an older version: no voice stream. Only that stream is extracted (its audio decoded once more)
    fs = FeatureStore(store)
    (vid,) = fs.stream_video_ids("visual")
    kept = {m: fs.stream_info(m, vid).metadata for m in ("language", "acoustic", "visual")}
    fs.delete_stream("voice", vid)
    decodes.clear()
    assert mcr(args) == 0
    assert decodes == {clip: 1}, decodes
    assert {m: fs.stream_info(m, vid).metadata for m in kept} == kept  # not re-extracted
    assert fs.stream_metadata("voice", vid)["detector"] == "silero-vad"
    assert len(pd.read_csv(out)) == len(rows)
