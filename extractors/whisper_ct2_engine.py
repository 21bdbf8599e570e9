"""Whisper through CTranslate2: the bundled weights as they are shipped, recognition and word timing in C++.

The bundled whisper models are CTranslate2 models (:mod:`extractors.assets`); openai-whisper needs them converted
(:mod:`extractors.whisper_ct2`) and then decodes in PyTorch, one token at a time. This engine runs them in
CTranslate2 instead, behind the same interface (:class:`extractors.whisper_words.Engine`), so the windows, speech
regions, batching, fallback and openai-whisper's segment and word rules (:mod:`extractors.whisper_segments`) are
those of the openai-whisper path:

* the log-mel is openai-whisper's (:func:`extractors.whisper_words.log_mel`), windows as short as its (CTranslate2's
  encoder takes any even number of frames up to 3000, its positional embedding cut to them);
* ``encode``: ``Whisper.encode(to_cpu=True)``, (B, T', d) float32 states; the ``whisper-encoder`` acoustic stream
  reads these same states, so its features depend on the engine and its compute type;
* ``decode_batch``: ``Whisper.generate`` on the encoded windows, greedy at temperature 0 and sampled from the whole
  distribution above (seeded), timestamps on, as openai-whisper's ``DecodingTask``; scores turned into openai's
  ``avg_logprob`` (sum of log-probabilities over tokens + 1) and ``compression_ratio``, as faster-whisper does;
* ``word_timings``: ``Whisper.align`` (the DTW over the alignment heads' cross-attention, median filter 7, on the
  positions that hold audio), read into words by :func:`extractors.whisper_segments.timings_from_alignment`.

A model split in ``model.bin.part1, part2...`` chunks (the bundled base) is loaded from memory (``files=``),
nothing written to disk. ``compute_type`` "auto" is float16 on CUDA and float32 on CPU. Measured on the six CREMA-D
clips (twice) and a 3-minute video of them joined with pauses (language stream, one process, CPU seconds, 2-core
Xeon, 2026-12-05): float32 5.2 s and 17.5 s, the same words as openai-whisper (WER 0.000 and 0.080); int16 3.4 s
and 12.9 s (WER 0.000 and 0.095); int8 (= int8_float32 on a CPU without float16) 1.9 s and 7.7 s (WER 0.125 on the
clips). Both quantised types hear one or two of the six clips as "don't forget to check it" once the clips sit in
speech regions with their silence around them (the clips joined with 1-s pauses: WER 0.125 to 0.25 against
openai-whisper's words), more than the 0.02 allowed: not the default. Word times: median difference 0.00 s from
openai-whisper's at every compute type. Where openai-whisper's encoder runs in bfloat16 (a CPU with AVX512-BF16 or
AMX) it encodes 4x faster than CTranslate2's float32 one, which costs CTranslate2 its lead on 30-s windows (speech
without pauses); docs/benchmarks.md has the end-to-end figures.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from whisper.decoding import DecodingResult
from whisper.timing import WordTiming as Timing
from whisper.tokenizer import Tokenizer, get_tokenizer
from whisper.utils import compression_ratio

from extractors.whisper_ct2_model import model_key, shared_ct2_model
from extractors.whisper_segments import timings_from_alignment
from extractors.whisper_words import TranscribeOptions

MAX_NEW_TOKENS = 224  # openai-whisper's sample_len: half the decoder's context
_MODELS: dict[tuple, "CTranslate2Engine"] = {}
_MODELS_LOCK = threading.Lock()


def shared_ct2_engine(directories: list[Path], *, compute_type: str = "auto", threads: int | None = None
                      ) -> "CTranslate2Engine":
    """This process's engine of the CTranslate2 model in ``directories`` (its chunks in order; config and
    vocabulary in the first) at ``compute_type``, loaded on first use
    (:mod:`extractors.whisper_ct2_model`). ``threads``: CTranslate2's intra-op threads (None: torch's current
    setting, which a Dask worker sets from its ``OMP_NUM_THREADS``)."""
    threads = threads or torch.get_num_threads()
    key = model_key(directories, compute_type, threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = CTranslate2Engine(shared_ct2_model(directories, compute_type=compute_type,
                                                              threads=threads), compute_type=key[2])
        return _MODELS[key]


class CTranslate2Engine:
    """An :class:`extractors.whisper_words.Engine` of a ``ctranslate2.models.Whisper`` model."""

    name = "ctranslate2"

    def __init__(self, model, *, compute_type: str):
        import ctranslate2

        self.model, self.compute_type = model, compute_type
        self.n_mels = model.n_mels
        zeros = np.zeros((1, self.n_mels, 16), np.float32)
        self.n_state = int(np.asarray(model.encode(ctranslate2.StorageView.from_array(zeros), to_cpu=True)).shape[-1])

    def tokenizer(self, language: str | None) -> Tokenizer:
        return get_tokenizer(self.model.is_multilingual, num_languages=self.model.num_languages, language=language,
                             task="transcribe")

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) log-mel, T even and <= 3000 -> (B, T // 2, d) float32 encoder states."""
        array = _contiguous(mel)
        out = self.model.encode(_storage(array), to_cpu=True)
        return torch.from_numpy(np.array(out)).float()

    def decode_batch(self, features: torch.Tensor, options: TranscribeOptions, temperature: float,
                     seed: int | None = None) -> list[DecodingResult]:
        """Decode (B, T', d) features at one temperature, as openai-whisper's ``DecodingTask`` (no fallback)."""
        import ctranslate2

        array = _contiguous(features)
        encoded = _storage(array)
        if options.language is None:
            languages = [pairs[0][0][2:-2] for pairs in self.model.detect_language(encoded)]  # "<|en|>" -> "en"
        else:
            languages = [options.language] * features.shape[0]
        tokenizers = [self.tokenizer(language) for language in languages]
        if seed is not None:
            ctranslate2.set_random_seed(seed)
        sampling = dict(sampling_topk=0, sampling_temperature=temperature) if temperature > 0 else {}
        results = self.model.generate(encoded, [list(t.sot_sequence) for t in tokenizers], beam_size=1,
                                      max_length=MAX_NEW_TOKENS, return_scores=True, return_no_speech_prob=True,
                                      **sampling)
        out = []
        for i, (result, tokenizer) in enumerate(zip(results, tokenizers)):
            tokens = list(result.sequences_ids[0])
            text = tokenizer.decode([t for t in tokens if t < tokenizer.eot]).strip()
            cumulative = result.scores[0] * len(tokens)  # CTranslate2 divides by the length (length_penalty 1)
            out.append(DecodingResult(audio_features=features[i], language=languages[i], tokens=tokens, text=text,
                                      avg_logprob=cumulative / (len(tokens) + 1), no_speech_prob=result.no_speech_prob,
                                      temperature=temperature, compression_ratio=compression_ratio(text)))
        return out

    def word_timings(self, tokenizer: Tokenizer, text_tokens: list[int], features: torch.Tensor,
                     num_frames: int) -> list[Timing]:
        """One timing per word of ``text_tokens`` in one window's (1, T', d) features, ``num_frames`` of audio."""
        if not text_tokens:
            return []
        array = _contiguous(features)
        result = self.model.align(_storage(array), list(tokenizer.sot_sequence), [text_tokens], [num_frames],
                                  median_filter_width=7)[0]
        path = np.asarray(result.alignments, np.int64).reshape(-1, 2)  # (K, 2): token index, encoder position
        return timings_from_alignment(tokenizer, text_tokens, path[:, 0], path[:, 1], result.text_token_probs)


def _contiguous(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as a C-contiguous float32 array (a view when it already is one)."""
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy())


def _storage(array: np.ndarray):
    """``array`` as a ``ctranslate2.StorageView``, which shares its memory: the caller keeps ``array`` alive."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(array)
