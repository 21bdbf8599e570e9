"""The whisper-encoder acoustic stream: a separate encoder pass pooled the same way, the states shared with the
language extractor's ASR pass (no second encoder pass), media without audio or speech."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

import extractors
import extractors.whisper_words as whisper_words
from extractors.base import Media
from extractors.media import decode
from extractors.whisper_model import STATES
from tests.extractors.media_files import cremad_clips, write_media

pytestmark = pytest.mark.slow
# the openai-whisper engine, float32 (bfloat16, the default where the CPU has it, is compared elsewhere; the
# CTranslate2 engine's states in test_whisper_ct2_engine.py)
FLOAT32 = {"engine": "openai-whisper", "encoder_precision": "float32"}


def _features(table: pa.Table) -> np.ndarray:
    return np.asarray(table["features"].combine_chunks().values).reshape(len(table), -1)  # (N, d)


@pytest.fixture(scope="module")
def clips():
    return {emotion: decode(path, fps=1) for emotion, path in cremad_clips().items()}


@pytest.fixture(scope="module")
def encoder():
    return extractors.create("whisper-encoder", **FLOAT32)


@pytest.fixture
def encoder_calls(monkeypatch):
    """How many windows went through whisper's encoder (the real one, counted)."""
    calls = [0]
    plain = whisper_words.encode

    def counted(model, mel, **kwargs):
        calls[0] += mel.shape[0]
        return plain(model, mel, **kwargs)

    monkeypatch.setattr(whisper_words, "encode", counted)
    return calls


def _pooled_reference(model, audio: np.ndarray, regions: list[tuple[int, int]], window: int, pool: int):
    """An encoder pass written out: each region's log-mel padded to ``window`` frames, whisper's encoder, the
    positions that hold audio kept and averaged ``pool`` at a time on the 20-ms grid of the audio."""
    starts, states = [], []
    for a, b in regions:
        mel = whisper_words.log_mel(audio[a:b], model.dims.n_mels)
        with torch.no_grad():
            out = whisper_words.encode(model, torch.nn.functional.pad(mel, (0, window - mel.shape[-1]))[None])[0]
        n = mel.shape[-1] // 2
        starts.append(a // 320 + np.arange(n))
        states.append(out[:n].numpy())
    starts, states = np.concatenate(starts), np.concatenate(states)
    rows = np.unique(starts // pool)
    return rows, np.stack([states[starts // pool == r].mean(axis=0) for r in rows])


def test_registered_with_its_schema(encoder):
    assert "whisper-encoder" in extractors.available("acoustic")
    assert encoder.frame_shift == 0.04
    assert encoder.feature_names == [f"whisper_{i:03d}" for i in range(512)]  # whisper base
    schema = encoder.schema()
    assert schema.names == ["time", "features"] and schema.field("features").type == pa.list_(pa.float32(), 512)
    assert json.loads(schema.metadata[b"frame_shift"]) == 0.04
    models = json.loads(schema.metadata[b"models"])
    assert models["whisper"].startswith("base (base.pt, sha256 ") and models["whisper encoder"] == "float32"
    with pytest.raises(ValueError, match="multiple of whisper's 0.02 s"):
        extractors.create("whisper-encoder", hop=0.03)
    # a worker running both whisper streams holds one model
    assert extractors.create("whisper-glove", **FLOAT32).engine.model is encoder.engine.model


def test_states_equal_a_separate_encoder_pass_pooled_the_same_way(encoder, clips):
    """Each clip's rows are its speech regions' encoder states (8-s windows), averaged two 20-ms positions at a
    time, at the centres of those 40-ms spans."""
    from extractors.vad import speech_regions
    from extractors.whisper_regions import merge_regions

    for emotion, media in clips.items():
        table = encoder.extract(media)
        regions = merge_regions(speech_regions(media.audio, 16000), encoder.options)
        assert regions and all(b - a <= 4 * 16000 for a, b in regions), (emotion, regions)
        rows, expected = _pooled_reference(encoder.model, media.audio, regions, window=800, pool=2)
        np.testing.assert_allclose(np.asarray(table["time"]), (rows + 0.5) * 0.04, atol=1e-9)
        np.testing.assert_allclose(_features(table), expected, rtol=1e-4, atol=1e-5, err_msg=emotion)


def test_whole_audio_in_30s_windows_is_whispers_own_encoder(clips):
    """vad=False and no short window: the states of openai-whisper's ``embed_audio`` on the 30-s window its
    ``transcribe`` makes (the clip's log-mel frames, zero-padded by ``pad_or_trim``)."""
    import whisper

    ex = extractors.create("whisper-encoder", vad=False, short_window_seconds=None, hop=0.02, **FLOAT32)
    media = clips["HAP"]
    table = ex.extract(media)
    mel = whisper.log_mel_spectrogram(torch.from_numpy(media.audio), padding=whisper.audio.N_SAMPLES)
    content = mel[:, : mel.shape[-1] - whisper.audio.N_FRAMES]
    with torch.no_grad():
        states = ex.model.embed_audio(whisper.pad_or_trim(content, whisper.audio.N_FRAMES)[None])[0].numpy()
    n = len(media.audio) // 320
    assert len(table) == n
    np.testing.assert_allclose(_features(table), states[:n], rtol=1e-4, atol=1e-5)


def test_shared_with_the_language_pass_without_encoding_again(encoder, clips, encoder_calls):
    """Beside the language extractor, the acoustic stream takes the ASR's windows: the same rows as alone, the
    same words as without sharing, and no window encoded twice."""
    language = extractors.create("whisper-glove", **FLOAT32)
    media = clips["ANG"]
    alone = encoder.extract(media)
    words = language.extract(media)
    encoder_calls[0] = 0
    shared = {STATES: {}}
    assert language.extract_shared(media, shared).equals(words)
    asr_windows = encoder_calls[0]
    assert asr_windows >= 1 and len(shared[STATES]) == asr_windows
    assert encoder.extract_shared(media, shared).equals(alone)
    assert encoder_calls[0] == asr_windows, "the acoustic stream encoded a window the ASR pass had encoded"


def test_extract_window_runs_the_encoder_once_for_both_streams(tmp_path, encoder, clips, encoder_calls):
    from workflows.extract.window import extract_window
    from workflows.extract.worker import ExtractorSpec

    path = str(cremad_clips()["SAD"])
    language = extractors.create("whisper-glove", **FLOAT32)
    specs = [ExtractorSpec.of(language), ExtractorSpec.of(encoder)]
    extract_window(path, specs[:1])
    language_only, encoder_calls[0] = encoder_calls[0], 0
    both = extract_window(path, specs[::-1])  # in any order: the language pass runs first
    assert not both.errors and encoder_calls[0] == language_only
    np.testing.assert_allclose(_features(both.tables["acoustic"]), _features(encoder.extract(clips["SAD"])),
                               rtol=1e-5, atol=1e-6)
    # a chunk of a long video (with an audio margin for librosa): the chunk's speech regions, as the ASR's
    encoder_calls[0] = 0
    extract_window(path, specs[:1], start=0.6, end=2.0, margin=0.5)
    language_only, encoder_calls[0] = encoder_calls[0], 0
    chunk = extract_window(path, specs, start=0.6, end=2.0, margin=0.5)
    assert not chunk.errors and encoder_calls[0] == language_only >= 1
    times = np.asarray(chunk.tables["acoustic"]["time"])
    assert len(times) and 0.6 <= times.min() and times.max() < 2.0


def test_only_the_windows_the_asr_did_not_encode_are_encoded(encoder, encoder_calls):
    """A 35-s region: its first 30-s window comes from the ASR pass, the last 5 s are encoded here."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.normal(size=35 * 16000)).astype(np.float32)  # no silence: one region
    media = Media("noise.wav", 35.0, audio, 16000, np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0))
    shared = {STATES: {}}
    record = encoder.states_recorder(shared[STATES])
    mel = whisper_words.log_mel(audio, encoder.model.dims.n_mels)[None, :, :3000]
    record(audio, 0, 3000, whisper_words.encode(encoder.model, mel)[0, :1500])  # as the ASR pass would
    encoder_calls[0] = 0
    table = encoder.extract_shared(media, shared)
    assert encoder_calls[0] == 1 and len(table) == 35 * 25
    np.testing.assert_allclose(_features(table), _features(encoder.extract(media)), rtol=1e-5, atol=1e-6)


def test_no_audio_and_silence_give_empty_tables(encoder, tmp_path):
    """Audio-less media: the librosa extractor's missing-stream behaviour (an empty table, same schema)."""
    video = decode(str(write_media(tmp_path / "mute.mp4", audio=False)), fps=5)
    assert not video.has_audio
    for media in (video, Media("silence.wav", 2.0, np.zeros(32000, np.float32), 16000,
                               np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0))):
        table = encoder.extract(media)
        assert table.num_rows == 0 and table.schema == encoder.schema()


def test_mcr_extract_stores_the_stream_with_its_model(tmp_path):
    """``extract_corpus`` with ``acoustic: whisper-encoder``: the stored stream names its whisper weights, has
    one row per 40 ms of speech, and a second run with librosa recomputes only the acoustic stream."""
    from pipeline.corpus import scan_folder
    from pipeline.store import FeatureStore
    from workflows.cluster import local_client
    from workflows.extract import build_extractors, extract_corpus

    clip = cremad_clips()["HAP"]
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / clip.name).symlink_to(clip)
    sources, store = scan_folder(tmp_path / "videos"), FeatureStore(tmp_path / "store")
    names = {"language": "whisper-glove", "acoustic": "whisper-encoder", "visual": None}
    with local_client(1, processes=False) as client:
        summary = extract_corpus(sources, store, client=client, extractors=build_extractors(names), progress=False)
        assert summary.failed == 0
        (video_id,) = [s.video_id for s in sources]
        meta = store.stream_metadata("acoustic", video_id)
        assert meta["extractor"] == "whisper-encoder" and json.loads(meta["frame_shift"]) == 0.04
        models = json.loads(meta["models"])  # the default engine's: CTranslate2, the bundled model as shipped
        assert models["whisper"].startswith("base (CTranslate2, fingerprint ")
        assert models["whisper engine"].startswith("ctranslate2 ")
        table = store.read_stream("acoustic", [video_id])
        assert 40 <= table.num_rows <= 2.5 * 25 and len(json.loads(meta["feature_names"])) == 512
        again = extract_corpus(sources, store, client=client, progress=False,
                               extractors=build_extractors({**names, "acoustic": "librosa"}))
        assert again.computed.get("acoustic") == 1 and not again.computed.get("language")
