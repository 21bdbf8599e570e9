"""Words with timings from openai-whisper, without encoding 28 seconds of padding for a 2-second clip.

openai-whisper pads every window to 30 s (3000 mel frames -> 1500 encoder positions) and, for word timestamps,
runs the encoder a second time inside ``find_alignment``. On a 2-s clip almost all of that work is padding.
Two changes remove it:

1. The audio features are computed once per window and shared by the decoder and the word timing
   (:func:`word_timings` takes features, not a spectrogram). This alone changes nothing in the output.
2. When at most ``short_content_seconds`` (4 s) of audio is left, the window is ``short_window_seconds`` (8 s)
   instead of 30 s: the same zero padding (log-mel 0, as ``pad_or_trim``), with the encoder's positional
   embedding cut to the window (whisper.cpp's ``audio_ctx``). Encoder and cross-attention cost drop ~3.5x.

What was measured before choosing (whisper base, CREMA-D clips, docs/benchmarks.md has the numbers):

* a window of the audio + 1 s was fastest and right on single sentences, but with two sentences in ~5 s of
  audio the decoder ended after the first (it needs enough empty window after the speech to see the audio
  continue), and decoding a short tail after the last word gave garbage ("it. sight. ネ عند");
* packing several clips into one 30-s window with silence between them (then splitting words back by time)
  trips whisper's repetition check on a corpus that says the same sentence in every clip (temperature
  fallback, slower, one clip's words timed into another) and needs a batch API the extractor does not have;
* batching does not remove the padding work.

The 10-s window for <= 5 s of audio kept every sentence in every test (single clips, two clips 2 s apart, with
noise around them) and silence and noise gave no words. An 8-s window for <= 4 s (the same twice as much window as
audio) was then 1.13x faster on the CREMA-D clips and 1.28x on a 3-minute recording of joined clips split in speech
regions, with the same words on the clips (WER 0) and a lower WER on the recording (0.093 against 0.103); a 6-s
window for <= 3 s changed 10% of the recording's words, and was not kept. On one-word clips (TESS's "say the word
...") the 8-s window later proved wrong: its decode failed and the fallback in it dropped or misheard the last word
(WER 0.20-0.24 on 100 clips, 7-14 of them with no word). A 16-s window scored 0.043-0.055 there but misheard the
joined CREMA-D sentences (WER 0.18 against 0.08; 30-s windows 0.33) at 2.1x their CPU, and a 12-s window did worse
on TESS (0.33). So a short window whose first decode fails is decoded again in a 16-s one
(``retry_window_seconds``): TESS 0.068 for 9% more CPU, the other media's words unchanged
(``benchmarks/whisper_windows.py``).

int8 dynamic quantisation of the linear layers (torch ``quantize_dynamic``) was 1.7-1.9x faster but raised the
clips' WER from 0 to 0.5 (0.375 with only the encoder or only the decoder quantised): not kept; the encoder alone
in bfloat16 (autocast, on a CPU with AVX512-BF16) was 1.2-1.3x faster with the same words everywhere: kept
(``encoder_precision``). Windows with more audio are 30 s, exactly as openai-whisper (``short_window_seconds=None``
and a float32 encoder make every window so: the output is then ``transcribe(..., word_timestamps=True,
condition_on_previous_text=False)``'s word for word, time for time), but for two guards:
a window of digital silence (peak below ``silence_peak``) is not decoded, and a segment that openai-whisper's
own hallucination test flags (``drop_anomalous``) is dropped -- whisper base repeated the last sentence over
6 s of trailing silence in a test, with every word squeezed to 0 s.

Word timing is apart from decoding (:func:`word_timings`: tokens + audio features -> timings, the DTW over
alignment-head cross-attention of openai-whisper's ``timing.find_alignment``); it reads only the positions that
hold audio (``num_frames // 2``), whatever the encoded window length.
"""
from __future__ import annotations

import itertools
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
import whisper
from whisper.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram
from whisper.decoding import DecodingOptions, DecodingResult, DecodingTask
from whisper.model import ModelDimensions, Whisper, disable_sdpa
from whisper.timing import WordTiming as _Timing, median_filter
from whisper.tokenizer import Tokenizer, get_tokenizer

from extractors.whisper_dtw import dtw  # whisper's, compiled once per installation
from extractors.whisper_defaults import RETRY_WINDOW_SECONDS, SHORT_WINDOW_SECONDS
from extractors.whisper_precision import check_encoder_precision, encoder_bfloat16
from extractors.whisper_segments import (FRAMES_PER_SECOND, assign_words, is_anomalous, split_segments,
                                         timings_from_alignment)
from pipeline.manifest import WordTiming

FALLBACK_SEED = 0  # seed of the sampling at fallback temperatures (+ the temperature's index)
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # openai-whisper transcribe's fallback temperatures


def load_whisper(checkpoint: str | Path, *, device: str = "cpu") -> Whisper:
    """An openai-whisper model from a checkpoint (``torch.load(weights_only=True)``), alignment heads set.

    Heads come from the checkpoint's ``alignment_heads`` (written by :mod:`extractors.whisper_ct2`), else from
    openai-whisper's table when the file is named after a model (``base.pt``), else whisper's default.
    """
    checkpoint = Path(checkpoint)
    try:
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model = Whisper(ModelDimensions(**state["dims"]))
        model.load_state_dict(state["model_state_dict"])
    except (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, TypeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{checkpoint}: not an openai-whisper checkpoint ({reason}); pass a whisper .pt file, a "
                         f"CTranslate2 whisper directory or a model name") from error
    if "alignment_heads" in state:
        heads = torch.as_tensor(state["alignment_heads"], dtype=torch.bool)
        if heads.shape != (model.dims.n_text_layer, model.dims.n_text_head):
            raise ValueError(f"{checkpoint}: alignment heads of shape {tuple(heads.shape)} for a model of "
                             f"{model.dims.n_text_layer} layers x {model.dims.n_text_head} heads")
        model.register_buffer("alignment_heads", heads.to_sparse(), persistent=False)
    elif checkpoint.stem in whisper._ALIGNMENT_HEADS:
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS[checkpoint.stem])
    return model.to(device).eval()


@dataclass(frozen=True)
class TranscribeOptions:
    """How :func:`transcribe_words` decodes. Defaults are openai-whisper ``transcribe``'s."""

    language: str | None = "en"
    """Spoken language code; None detects it per window."""
    short_window_seconds: float | None = SHORT_WINDOW_SECONDS
    """Length of the window encoded when little audio is left (see the module doc); None: always 30 s."""
    short_content_seconds: float = 4.0
    """The short window is used only when at most this much audio is left: the decoder needs the rest empty."""
    retry_window_seconds: float | None = RETRY_WINDOW_SECONDS
    """A short window whose first decode fails (judged silence, improbable or repetitive) is encoded again in a
    window this long and decoded there, temperature fallback included; None: it falls back in the short window.
    Only the words change: the encoder states told to ``on_window`` stay the short window's."""
    drop_anomalous: bool = True
    """Drop segments whose words look hallucinated (openai-whisper's ``is_segment_anomaly``: improbable words,
    words squeezed to nothing), as whisper tends to repeat itself over long silences."""
    silence_peak: float = 1e-3
    """A window whose audio never exceeds this amplitude (-60 dBFS) is silence: no words, nothing decoded."""
    temperatures: tuple[float, ...] = TEMPERATURES
    """Decoding temperatures, tried in order while the result looks like a failure (fallback); the language
    extractor keeps the first ``1 + fallback`` (:class:`extractors.language.LanguageConfig`)."""
    compression_ratio_threshold: float = 2.4
    """A decode whose text compresses (gzip) better than this is too repetitive: fall back."""
    logprob_threshold: float = -1.0
    """A decode with a lower average token log-probability falls back."""
    no_speech_threshold: float = 0.6
    """A window whose no-speech probability is above this (and log-probability below the threshold) is silence."""
    vad_min_silence: float = 0.5
    """:mod:`extractors.whisper_regions`: the shortest silence that separates two speech regions ..."""
    batch_size: int = 8
    """... and how many regions short enough for one short window are encoded and decoded (first temperature)
    together; 1: one by one."""
    encoder_precision: str = "auto"
    """The encoder's matrix products on CPU: "float32"; "bfloat16" (torch's CPU autocast: ~1.3x faster where the
    CPU multiplies bfloat16 natively, the same words on every benchmark clip); "auto": bfloat16 on such a CPU
    (AVX512-BF16 or AMX), else float32. The decoder and the word timing stay float32."""

    def __post_init__(self):
        short, content, retry = self.short_window_seconds, self.short_content_seconds, self.retry_window_seconds
        if short is not None and not 0 < content <= short <= N_FRAMES / FRAMES_PER_SECOND:
            raise ValueError(f"short_content_seconds ({content}) must be positive and at most short_window_seconds "
                             f"({short}), itself at most {N_FRAMES // FRAMES_PER_SECOND} s")
        if short is not None and retry is not None and not short < retry <= N_FRAMES / FRAMES_PER_SECOND:
            raise ValueError(f"retry_window_seconds ({retry}) must be longer than short_window_seconds ({short}) and "
                             f"at most {N_FRAMES // FRAMES_PER_SECOND} s; null: no retry")
        check_encoder_precision(self.encoder_precision)


def log_mel(audio: np.ndarray, n_mels: int) -> torch.Tensor:
    """(S,) float32 16-kHz audio -> (n_mels, S // 160) log-mel, computed as openai-whisper's ``transcribe`` does."""
    mel = log_mel_spectrogram(torch.from_numpy(np.ascontiguousarray(audio, np.float32)), n_mels, padding=N_SAMPLES)
    return mel[:, : mel.shape[-1] - N_FRAMES]


@torch.no_grad()
def encode(model: Whisper, mel: torch.Tensor, *, bfloat16: bool = False) -> torch.Tensor:
    """(B, n_mels, T) log-mel, T even and <= 3000 -> (B, T // 2, d) audio features (float32).

    openai-whisper's ``AudioEncoder.forward`` with the positional embedding sliced to the input length; for
    T = 3000 it is that function. ``bfloat16``: under torch's CPU autocast (see ``encoder_precision``).
    """
    enc = model.encoder
    assert mel.shape[-1] % 2 == 0 and mel.shape[-1] <= 2 * enc.positional_embedding.shape[0], f"mel {mel.shape}"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        x = F.gelu(enc.conv1(mel))
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)  # (B, T/2, d)
        x = (x + enc.positional_embedding[: x.shape[1]]).to(x.dtype)
        for block in enc.blocks:
            x = block(x)
        return enc.ln_post(x).float()


class _FeaturesDecodingTask(DecodingTask):
    """openai-whisper's decoding, fed audio features of any length (it re-encodes anything not 1500 long)."""

    def _get_audio_features(self, audio_features: torch.Tensor) -> torch.Tensor:
        return audio_features


def decode_batch(model: Whisper, audio_features: torch.Tensor, options: TranscribeOptions, temperature: float = 0.0
                 ) -> list[DecodingResult]:
    """Decode (B, T', d) features of B windows together at one temperature (no fallback)."""
    decoding = DecodingOptions(task="transcribe", language=options.language, temperature=temperature, fp16=False)
    return _FeaturesDecodingTask(model, decoding).run(audio_features)


class Engine(Protocol):
    """What :func:`transcribe_words` needs of a whisper implementation: :class:`OpenAIWhisperEngine` (PyTorch) or
    :class:`extractors.whisper_ct2_engine.CTranslate2Engine`. Features are (B, T', d) float32 CPU tensors."""

    name: str
    n_mels: int
    n_state: int

    def tokenizer(self, language: str | None) -> Tokenizer: ...

    def encode(self, mel: torch.Tensor) -> torch.Tensor: ...

    def decode_batch(self, features: torch.Tensor, options: TranscribeOptions, temperature: float,
                     seed: int | None = None) -> list[DecodingResult]: ...

    def word_timings(self, tokenizer: Tokenizer, text_tokens: list[int], features: torch.Tensor,
                     num_frames: int) -> list[_Timing]: ...


class OpenAIWhisperEngine:
    """openai-whisper in PyTorch, the reference engine: :func:`encode`, :func:`decode_batch`, :func:`word_timings`
    of one model, its encoder at ``bfloat16`` or not."""

    name = "openai-whisper"

    def __init__(self, model: Whisper, *, bfloat16: bool = False):
        self.model, self.bfloat16 = model, bfloat16
        self.n_mels, self.n_state = model.dims.n_mels, model.dims.n_audio_state

    def tokenizer(self, language: str | None) -> Tokenizer:
        return get_tokenizer(self.model.is_multilingual, num_languages=self.model.num_languages, language=language,
                             task="transcribe")

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        return encode(self.model, mel, bfloat16=self.bfloat16)

    def decode_batch(self, features: torch.Tensor, options: TranscribeOptions, temperature: float,
                     seed: int | None = None) -> list[DecodingResult]:
        """:func:`decode_batch`; ``seed``: torch's generator seeded in a fork (the caller's stream is untouched)."""
        if seed is None:
            return decode_batch(self.model, features, options, temperature)
        with torch.random.fork_rng(devices=[features.device] if features.is_cuda else []):
            torch.manual_seed(seed)
            return decode_batch(self.model, features, options, temperature)

    def word_timings(self, tokenizer: Tokenizer, text_tokens: list[int], features: torch.Tensor,
                     num_frames: int) -> list[_Timing]:
        return word_timings(self.model, tokenizer, text_tokens, features, num_frames)


def engine_of(model: Whisper | Engine, options: TranscribeOptions) -> Engine:
    """An engine as it is, an openai-whisper model as :class:`OpenAIWhisperEngine` (``options.encoder_precision``)."""
    if isinstance(model, Whisper):
        return OpenAIWhisperEngine(model, bfloat16=encoder_bfloat16(model.device, options.encoder_precision))
    return model


def decode(engine: Whisper | Engine, audio_features: torch.Tensor, options: TranscribeOptions,
           first: DecodingResult | None = None) -> DecodingResult:
    """Decode one window's (1, T', d) features with temperature fallback, as openai-whisper's transcribe;
    ``first``: the result at the first temperature when it is already known (decoded in a batch).

    Sampling at a temperature above 0 is seeded (``FALLBACK_SEED``): the same window gives the same words on
    every run, where openai-whisper's transcribe gives different ones."""
    engine, result = engine_of(engine, options), None
    for i, t in enumerate(options.temperatures):
        if i == 0 and first is not None:
            result = first
        else:
            result = engine.decode_batch(audio_features, options, t, seed=FALLBACK_SEED + i if t > 0 else None)[0]
        silence, failed = verdict(result, options)
        if silence or not failed:
            break
    return result


def verdict(result: DecodingResult, options: TranscribeOptions) -> tuple[bool, bool]:
    """(silence, failed) of one decode, by openai-whisper transcribe's tests: the window holds no speech (no-speech
    probability high and the words improbable: silence is a failure too); the words are too repetitive or too
    improbable to keep."""
    too_repetitive = result.compression_ratio > options.compression_ratio_threshold
    too_unlikely = result.avg_logprob < options.logprob_threshold
    return result.no_speech_prob > options.no_speech_threshold and too_unlikely, too_repetitive or too_unlikely


@torch.no_grad()
def word_timings(model: Whisper, tokenizer: Tokenizer, text_tokens: list[int], audio_features: torch.Tensor,
                 num_frames: int, *, medfilt_width: int = 7, qk_scale: float = 1.0) -> list[_Timing]:
    """Align text tokens to (1, T', d) audio features: one timing (seconds from the window start) per word.

    openai-whisper's ``find_alignment`` on precomputed features: the decoder is run once over the tokens with
    the alignment heads' cross-attention kept, restricted to the ``num_frames // 2`` positions that hold audio,
    normalised, median-filtered and aligned to the tokens by DTW.
    """
    if not text_tokens:
        return []
    assert num_frames // 2 <= audio_features.shape[1], f"{num_frames} frames, {audio_features.shape[1]} positions"
    tokens = torch.tensor([*tokenizer.sot_sequence, tokenizer.no_timestamps, *text_tokens, tokenizer.eot])
    qks: list[torch.Tensor | None] = [None] * model.dims.n_text_layer
    hooks = [block.cross_attn.register_forward_hook(lambda _, ins, outs, i=i: qks.__setitem__(i, outs[-1][0]))
             for i, block in enumerate(model.decoder.blocks)]
    try:
        with disable_sdpa():
            logits = model.decoder(tokens[None].to(audio_features.device), audio_features)[0]
    finally:
        for hook in hooks:
            hook.remove()
    token_probs = logits[len(tokenizer.sot_sequence):, : tokenizer.eot].softmax(dim=-1)
    text_token_probs = token_probs[np.arange(len(text_tokens)), text_tokens].tolist()

    weights = torch.stack([qks[layer][head] for layer, head in model.alignment_heads.indices().T])  # (H, N, T')
    weights = weights[:, :, : num_frames // 2]
    weights = (weights * qk_scale).softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = median_filter((weights - mean) / std, medfilt_width)
    matrix = weights.mean(dim=0)[len(tokenizer.sot_sequence): -1]  # (text tokens + 1, frames)
    text_indices, time_indices = dtw(-matrix)

    return timings_from_alignment(tokenizer, text_tokens, text_indices, time_indices, text_token_probs)


def mel_frames(seconds: float) -> int:
    """The mel frames of a window of ``seconds``: an even count, two frames per encoder position."""
    return 2 * round(seconds * FRAMES_PER_SECOND / 2)


def window_frames(options: TranscribeOptions, segment_size: int) -> int:
    """The mel frames encoded for ``segment_size`` frames of audio: a short window when little audio is left."""
    short = options.short_window_seconds is not None and \
        segment_size <= options.short_content_seconds * FRAMES_PER_SECOND
    window = mel_frames(options.short_window_seconds) if short else N_FRAMES
    if not segment_size <= window <= N_FRAMES:  # short_* options that round badly
        raise ValueError(f"{segment_size} frames of audio in a {window}-frame window: make "
                         f"short_window_seconds larger than short_content_seconds")
    return window


def transcribe_words(model: Whisper | Engine, audio: np.ndarray, options: TranscribeOptions = TranscribeOptions(),
                     first: tuple[torch.Tensor, DecodingResult] | None = None,
                     on_window: Callable[[int, int, torch.Tensor], None] | None = None) -> list[WordTiming]:
    """(S,) float32 16-kHz mono audio -> recognised words, in order, with times in seconds from the audio start.

    Windows of at most 30 s are decoded one after another, seeking as openai-whisper's transcribe does (no
    prompt carried between windows); each timestamp-delimited segment with words is an utterance, numbered
    from 0. Silence gives no words. ``first``: the first window's features and its decoding at the first
    temperature, when they were computed in a batch (:mod:`extractors.whisper_regions`). ``on_window(seek,
    window, states)`` is told of every window encoded: its first mel frame, its length in mel frames and the
    (segment_size // 2, d) encoder states of the audio in it (:mod:`extractors.whisper_states` reuses them); a
    short window whose first decode fails is decoded again in a ``retry_window_seconds`` window, whose words are
    kept, while ``on_window`` is told of the short one.
    ``model``: an openai-whisper model or any :class:`Engine`.
    """
    engine = engine_of(model, options)
    tokenizer = engine.tokenizer(options.language)
    mel = log_mel(audio, engine.n_mels)  # (n_mels, F)
    content_frames = mel.shape[-1]
    seek, utterance, last_speech, out = 0, 0, 0.0, []
    while seek < content_frames:
        segment_size = min(N_FRAMES, content_frames - seek)
        chunk = audio[seek * HOP_LENGTH: (seek + segment_size) * HOP_LENGTH]
        if chunk.size == 0 or float(np.abs(chunk).max()) < options.silence_peak:
            seek += segment_size
            continue
        window = window_frames(options, segment_size)
        if seek == 0 and first is not None:
            features, result = first
        else:
            mel_window = F.pad(mel[:, seek: seek + segment_size], (0, window - segment_size))  # zeros, as pad_or_trim
            features = engine.encode(mel_window[None])  # (1, window / 2, d)
            result = decode(engine, features, replace(options, temperatures=options.temperatures[:1]))
        if on_window is not None:
            on_window(seek, features.shape[1] * 2, features[0, : segment_size // 2])
        if window < N_FRAMES and options.retry_window_seconds is not None and verdict(result, options)[1]:
            wide = mel_frames(options.retry_window_seconds)
            features = engine.encode(F.pad(mel[:, seek: seek + segment_size], (0, wide - segment_size))[None])
            result = decode(engine, features, options)
        else:
            result = decode(engine, features, options, first=result)
        if result.no_speech_prob > options.no_speech_threshold and result.avg_logprob <= options.logprob_threshold:
            seek += segment_size
            continue
        offset = seek / FRAMES_PER_SECOND
        texts, spans, single_ending, advance = split_segments(result.tokens, tokenizer, offset,
                                                              segment_size / FRAMES_PER_SECOND)
        timings = engine.word_timings(tokenizer, list(itertools.chain(*texts)), features, segment_size)
        window_words = []
        for words in assign_words(timings, texts, spans, offset, last_speech):
            if words and not (options.drop_anomalous and is_anomalous(words)):
                # a heuristic of assign_words may stretch a word past the audio
                limit = round((seek + segment_size) / FRAMES_PER_SECOND, 2)
                window_words += [WordTiming(w.word.strip(), round(min(w.start, limit), 2),
                                            round(min(w.end, limit), 2), w.probability, utterance) for w in words]
                utterance += 1
        previous_seek, seek = seek, seek + advance
        if not single_ending and window_words and window_words[-1].end > offset:
            seek = round(window_words[-1].end * FRAMES_PER_SECOND)
        seek = max(seek, previous_seek + 1)  # always progress
        out.extend(window_words)
        last_speech = window_words[-1].end if window_words else last_speech
    return out
