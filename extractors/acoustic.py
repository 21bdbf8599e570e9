"""Acoustic descriptors with librosa at a fixed hop (10 ms, as COVAREP), as one named float32 vector per frame.

The vector (``AcousticExtractor.feature_names``, D = 18 + n_mfcc = 43 by default) is documented column by column,
with its COVAREP counterpart, in docs/features.md:

* ``f0`` Hz (``librosa.yin``; 0 when unvoiced), ``voiced`` {0, 1}, ``periodicity`` [0, 1] (peak of the normalised
  autocorrelation over the F0 lag range), ``h1_h2`` dB (first minus second harmonic, 0 when unvoiced),
  ``peak_slope`` dB/octave (regression slope of octave-band spectral peaks, 250 Hz - 8 kHz);
* ``mfcc_00 .. mfcc_{n-1}`` (25 by default, like COVAREP's MCEP_0..24);
* ``rms_db`` dBFS, ``zcr``, ``spectral_centroid`` / ``_bandwidth`` / ``_rolloff`` Hz, ``spectral_flatness``,
  ``spectral_contrast_0..6`` dB.

Row ``k`` is the frame *centred* at ``time = k * hop`` s (librosa's ``center=True``), so a clip of S samples has
``1 + S // hop_samples`` rows. Nothing is ever NaN: an unvoiced frame has ``f0 = 0`` and ``voiced = 0``.
YIN plus an autocorrelation voicing measure costs ~10 ms per second of audio; ``librosa.pyin`` costs ~100 ms and,
on CREMA-D's low-bitrate mp3 audio, called almost every frame unvoiced, so it is not used.
"""
from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import pyarrow as pa

from extractors.base import Extractor, ExtractorConfig, Media, features_column, frame_schema, register
from pipeline.errors import StageError

_SILENCE = 1e-5  # amplitude floor (-100 dBFS) that keeps every log finite
_PEAK_SLOPE_BANDS = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)  # octave band edges, Hz


@dataclass(frozen=True)
class AcousticConfig(ExtractorConfig):
    """Options of the librosa acoustic extractor."""

    hop: float = 0.01
    """Seconds between frames (COVAREP: 10 ms)."""
    window: float = 0.025
    """Analysis window of the spectral features (MFCC, energy, spectral shape), seconds."""
    pitch_window: float = 0.064
    """Frame of the F0 / voicing / harmonic analysis, seconds; must hold two periods of ``fmin``."""
    n_mfcc: int = 25
    """Number of MFCCs (COVAREP has 25 MCEPs)."""
    n_mels: int = 40
    """Mel bands under the MFCCs."""
    fmin: float = 60.0
    """Lowest F0 searched, Hz."""
    fmax: float = 500.0
    """Highest F0 searched, Hz."""
    voicing_threshold: float = 0.4
    """A frame is voiced when its periodicity reaches this ..."""
    voicing_floor_db: float = 10.0
    """... and its ``rms_db`` this many dB above the clip's noise floor (10th percentile) or, if lower, this many
    dB below its loud frames (95th percentile), so that a clip that is all voice is voiced."""
    top_db: float | None = None
    """Floor of the MFCCs' and spectral contrast's dB values, this far below the clip's loudest value (librosa's
    ``top_db``, 80 in librosa). None: a fixed floor (-100 dB), so that a frame's features do not depend on the
    rest of the clip, nor on where a long video is cut into chunks."""


@register
class AcousticExtractor(Extractor):
    """librosa descriptors of ``Media.audio``: one row per hop, ``features`` (N, D) float32."""

    name = "librosa"
    modality = "acoustic"
    config_class = AcousticConfig

    @property
    def uses_numba(self) -> bool:
        return True  # librosa's pyin and spectral kernels

    @property
    def frame_shift(self) -> float:
        return self.config.hop

    @property
    def feature_names(self) -> list[str]:
        return (["f0", "voiced", "periodicity", "h1_h2", "peak_slope"]
                + [f"mfcc_{i:02d}" for i in range(self.config.n_mfcc)]
                + ["rms_db", "zcr", "spectral_centroid", "spectral_bandwidth", "spectral_rolloff",
                   "spectral_flatness"]
                + [f"spectral_contrast_{i}" for i in range(7)])

    def schema(self) -> pa.Schema:
        return frame_schema(self.feature_dim, self.metadata())

    def model_identity(self) -> dict[str, str]:
        return {"librosa": librosa.__version__}

    def extract(self, media: Media) -> pa.Table:
        """(N, D) features at times ``k * hop`` (frame centres); an empty table when there is no audio."""
        if not media.has_audio:
            return self.schema().empty_table()
        try:
            features = self.compute(media.audio, media.sample_rate)  # (N, D)
        except ValueError as error:
            raise StageError(media.path, "acoustic", str(error)) from error
        times = media.start + np.arange(len(features), dtype=np.float64) * self.config.hop
        table = pa.table([pa.array(times), features_column(features, self.feature_dim)], schema=self.schema())
        return table

    def load(self) -> None:
        """The schema, then librosa's numba kernels, from their cache, by analysing a second of noise (1-4 s
        the first time in a process, on 2 cores)."""
        super().load()
        self.compute(_noise(), 16000)

    def compute(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(S,) float audio -> (1 + S // hop_samples, D) float32, finite; ValueError for bad options or audio."""
        c = self.config
        hop = int(round(c.hop * sample_rate))
        if hop < 1:
            raise ValueError(f"hop {c.hop} s is under one sample at {sample_rate} Hz")
        n_frames = 1 + len(audio) // hop
        pitch_frame = int(2 ** np.ceil(np.log2(c.pitch_window * sample_rate)))
        if pitch_frame // 2 <= sample_rate / c.fmin:
            raise ValueError(f"pitch_window {c.pitch_window} s is too short for fmin={c.fmin} Hz: it must hold two "
                             f"periods of fmin (raise pitch_window or fmin)")
        if not np.isfinite(audio).all():
            raise ValueError("the audio has NaN or infinite samples")
        # pad short clips so every analysis frame fits; the extra frames are cut below
        y = np.pad(np.asarray(audio, np.float32), (0, max(0, pitch_frame - len(audio))))

        win = int(round(c.window * sample_rate))
        n_fft = int(2 ** np.ceil(np.log2(win)))
        spec = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win))  # (n_fft/2+1, N)
        mel = librosa.feature.melspectrogram(S=spec ** 2, sr=sample_rate, n_mels=c.n_mels)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, amin=_SILENCE ** 2, top_db=c.top_db),
                                    n_mfcc=c.n_mfcc)  # (n_mfcc, N)
        rms = librosa.feature.rms(y=y, frame_length=win, hop_length=hop)[0]
        rms_db = 20 * np.log10(np.maximum(rms, _SILENCE))
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=win, hop_length=hop)[0]
        shape = [librosa.feature.spectral_centroid(S=spec, sr=sample_rate)[0],
                 librosa.feature.spectral_bandwidth(S=spec, sr=sample_rate)[0],
                 librosa.feature.spectral_rolloff(S=spec, sr=sample_rate)[0],
                 librosa.feature.spectral_flatness(S=spec, amin=_SILENCE ** 2)[0]]
        contrast = _spectral_contrast(spec, sample_rate, n_fft, c.top_db)  # (7, N)

        f0 = librosa.yin(y, fmin=c.fmin, fmax=c.fmax, sr=sample_rate, frame_length=pitch_frame, hop_length=hop)
        pitch_spec = np.abs(librosa.stft(y, n_fft=pitch_frame, hop_length=hop))  # (pitch_frame/2+1, N)
        periodicity = _periodicity(y, pitch_frame, hop, int(sample_rate / c.fmax), int(sample_rate / c.fmin))
        # loud enough: above the noise floor, or (a clip that is all voice) not far below its loud frames
        quiet, loud = np.percentile(rms_db[:n_frames], [10, 95])
        gate = min(quiet + c.voicing_floor_db, loud - c.voicing_floor_db)
        voiced = (periodicity >= c.voicing_threshold) & (rms_db >= gate)
        freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=pitch_frame)
        h1_h2 = np.where(voiced, _h1_h2(pitch_spec, freqs, f0), 0.0)
        peak_slope = _peak_slope(pitch_spec, freqs)

        columns = [np.where(voiced, f0, 0.0)[None], voiced[None], periodicity[None], h1_h2[None], peak_slope[None],
                   mfcc, rms_db[None], zcr[None], np.stack(shape), contrast]
        n = min(col.shape[1] for col in columns)
        assert n >= n_frames, f"analyses gave {n} frames, expected {n_frames}"
        features = np.concatenate([col[:, :n_frames].astype(np.float32) for col in columns]).T  # (N, D)
        assert features.shape[1] == self.feature_dim, f"{features.shape[1]} columns for {self.feature_dim} names"
        if not np.isfinite(features).all():
            raise ValueError("acoustic features are not finite; please report it")
        return np.ascontiguousarray(features)


def _spectral_contrast(spec: np.ndarray, sample_rate: int, n_fft: int, top_db: float | None,
                       fmin: float = 100.0, n_bands: int = 6, quantile: float = 0.02) -> np.ndarray:
    """(n_bands + 1, N) ``librosa.feature.spectral_contrast`` (same bands, same quantile), its dB values floored at
    ``top_db`` below the clip's peak as librosa does, or (None) at the fixed amin only."""
    if top_db is not None:
        return librosa.feature.spectral_contrast(S=spec, sr=sample_rate, fmin=fmin, n_bands=n_bands,
                                                 quantile=quantile)
    freq = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    valley = np.zeros((n_bands + 1, spec.shape[1]))
    peak = np.zeros_like(valley)
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):  # librosa's loop, verbatim
        band = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(band)
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1:] = True
        sub = spec[band, :]
        if k < n_bands:
            sub = sub[:-1, :]
        n = int(max(np.rint(quantile * np.sum(band)), 1))
        ordered = np.sort(sub, axis=0)
        valley[k] = np.mean(ordered[:n], axis=0)
        peak[k] = np.mean(ordered[-n:], axis=0)
    return librosa.power_to_db(peak, top_db=None) - librosa.power_to_db(valley, top_db=None)


def _periodicity(y: np.ndarray, frame: int, hop: int, min_lag: int, max_lag: int) -> np.ndarray:
    """(N,) peak of the normalised, unbiased autocorrelation over lags [min_lag, max_lag], clipped to [0, 1]."""
    frames = librosa.util.frame(np.pad(y, frame // 2), frame_length=frame, hop_length=hop)  # (frame, N)
    frames = frames - frames.mean(axis=0, keepdims=True)
    power = np.abs(np.fft.rfft(frames, n=2 * frame, axis=0)) ** 2
    acf = np.fft.irfft(power, axis=0)[: max_lag + 1]  # (max_lag+1, N)
    unbias = frame / (frame - np.arange(max_lag + 1))  # a lag-tau product has frame - tau terms
    normalised = acf * unbias[:, None] / np.maximum(acf[:1], 1e-12)
    return np.clip(normalised[min_lag:].max(axis=0), 0.0, 1.0)


def _h1_h2(spec: np.ndarray, freqs: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """(N,) dB level of the strongest bin within half an F0 of F0 minus that of 2 F0 (speech spectrum)."""
    level = 20 * np.log10(np.maximum(spec, _SILENCE))  # (F, N)
    f = freqs[:, None]
    near_h1 = (f >= 0.5 * f0) & (f < 1.5 * f0)
    near_h2 = (f >= 1.5 * f0) & (f < 2.5 * f0)
    h1 = np.where(near_h1, level, -np.inf).max(axis=0)
    h2 = np.where(near_h2, level, -np.inf).max(axis=0)
    return np.nan_to_num(h1 - h2, nan=0.0, posinf=0.0, neginf=0.0)


def _peak_slope(spec: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """(N,) slope, dB per octave, of a line fitted to the peak level of each octave band (250 Hz - 8 kHz)."""
    level = 20 * np.log10(np.maximum(spec, _SILENCE))  # (F, N)
    bands = [(lo, hi) for lo, hi in zip(_PEAK_SLOPE_BANDS, _PEAK_SLOPE_BANDS[1:]) if lo < freqs[-1]]
    if len(bands) < 2:
        raise ValueError(f"peak_slope needs a sample rate above 1 kHz, got {2 * freqs[-1]:g} Hz")
    peaks = np.stack([level[(freqs >= lo) & (freqs <= hi)].max(axis=0) for lo, hi in bands])  # (B, N)
    octave = np.arange(len(bands), dtype=np.float64) - (len(bands) - 1) / 2  # centred band index
    return (octave[:, None] * (peaks - peaks.mean(axis=0))).sum(axis=0) / (octave ** 2).sum()


def warm_numba_caches() -> None:
    """Run the default acoustic analysis once on a second of noise, in this process.

    librosa compiles its numba kernels on first use and caches them next to its sources (``cache=True``). Worker
    processes started together on a fresh install all compile and write those cache files at once, and a process
    can load another's half-written kernel: it segfaults in the kernel (seen in the test suite's first run in a new
    virtual environment). Called before worker processes start (``workflows.cluster.local_client`` with processes,
    the test suite's controller), it leaves them complete cache files to load. whisper's word-timing kernel
    (:mod:`extractors.whisper_dtw`) is cached the same way and warmed here too.
    """
    from extractors import whisper_dtw

    AcousticExtractor().compute(_noise(), 16000)
    whisper_dtw.warm()


def _noise() -> np.ndarray:
    """(16000,) float32: a second of white noise at 16 kHz, the same every time."""
    return np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
