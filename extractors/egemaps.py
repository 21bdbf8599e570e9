"""openSMILE's eGeMAPS v02 low-level descriptors (``egemaps``): the acoustic parameter set made for affect.

The extended Geneva Minimalistic Acoustic Parameter Set (Eyben et al., IEEE Trans. Affective Computing 2016) is
25 descriptors every 10 ms, computed by the openSMILE binary that the ``opensmile`` PyPI package bundles
(``FeatureSet.eGeMAPSv02``, ``FeatureLevel.LowLevelDescriptors``; no download, no network): loudness, spectral
shape (alpha ratio, Hammarberg index, slopes 0-500 and 500-1500 Hz, flux, MFCC 1-4), and -- voiced frames only,
0 elsewhere (the ``_sma3nz`` columns) -- F0 in semitones from 27.5 Hz, jitter, shimmer, HNR, H1-H2, H1-A3 and
the first three formants' frequency, bandwidth and relative level. All are smoothed over 3 frames (``_sma3``).
The column names are openSMILE's (``EgemapsExtractor.feature_names``); docs/features.md lists them.

Row ``k`` is openSMILE's ``k``-th frame, which starts at ``k * 10 ms``; its ``time`` is that start + 10 ms (the
centre of the 20-ms frame openSMILE labels it with). A clip of ``S`` samples has about ``S // 160 - 4`` rows (the
60-ms pitch frames must fit); audio shorter than 60 ms is zero-padded to 60 ms first.
"""
from __future__ import annotations

import warnings
from importlib import metadata as importlib_metadata

import numpy as np
import pyarrow as pa

from extractors.base import Extractor, ExtractorConfig, Media, features_column, frame_schema, register
from pipeline.errors import StageError

HOP = 0.01  # openSMILE's eGeMAPS frame step
MIN_SECONDS = 0.06  # the F0 frame: shorter audio gives NaN rows
FEATURE_NAMES = [
    "Loudness_sma3", "alphaRatio_sma3", "hammarbergIndex_sma3", "slope0-500_sma3", "slope500-1500_sma3",
    "spectralFlux_sma3", "mfcc1_sma3", "mfcc2_sma3", "mfcc3_sma3", "mfcc4_sma3", "F0semitoneFrom27.5Hz_sma3nz",
    "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz", "HNRdBACF_sma3nz", "logRelF0-H1-H2_sma3nz",
    "logRelF0-H1-A3_sma3nz", "F1frequency_sma3nz", "F1bandwidth_sma3nz", "F1amplitudeLogRelF0_sma3nz",
    "F2frequency_sma3nz", "F2bandwidth_sma3nz", "F2amplitudeLogRelF0_sma3nz", "F3frequency_sma3nz",
    "F3bandwidth_sma3nz", "F3amplitudeLogRelF0_sma3nz"]


@register
class EgemapsExtractor(Extractor):
    """eGeMAPS low-level descriptors of ``Media.audio``: one row per 10 ms, ``features`` (N, 25) float32. No
    options: the parameter set is fixed, which is its point."""

    name = "egemaps"
    modality = "acoustic"

    def __init__(self, config: ExtractorConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        self._smile = None

    @property
    def smile(self):
        """The ``opensmile.Smile`` of eGeMAPS v02's low-level descriptors (created on first use)."""
        if self._smile is None:
            import opensmile

            self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                          feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        return self._smile

    @property
    def frame_shift(self) -> float:
        return HOP

    @property
    def feature_names(self) -> list[str]:
        return list(FEATURE_NAMES)

    def schema(self) -> pa.Schema:
        return frame_schema(self.feature_dim, self.metadata())

    def model_identity(self) -> dict[str, str]:
        return {"opensmile": importlib_metadata.version("opensmile"), "feature set": "eGeMAPSv02"}

    def extract(self, media: Media) -> pa.Table:
        """(N, D) descriptors at times ``media.start + k * 10 ms + 10 ms``; an empty table when there is no audio."""
        if not media.has_audio:
            return self.schema().empty_table()
        try:
            starts, features = self.compute(media.audio, media.sample_rate)
        except ValueError as error:
            raise StageError(media.path, "acoustic", str(error)) from error
        keep = starts < media.duration  # not the rows of the padding of a very short clip
        times = media.start + starts[keep] + HOP
        return pa.table([pa.array(times, pa.float64()), features_column(features[keep], self.feature_dim)],
                        schema=self.schema())

    def compute(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """(S,) float audio -> each frame's start (N,) seconds and its descriptors (N, D) float32, finite."""
        if not np.isfinite(audio).all():
            raise ValueError("the audio has NaN or infinite samples")
        y = np.asarray(audio, np.float32)
        y = np.pad(y, (0, max(0, int(np.ceil(MIN_SECONDS * sample_rate)) - len(y))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Segment too short": checked below
            frame = self.smile.process_signal(y, sample_rate)
        starts = frame.index.get_level_values("start").total_seconds().to_numpy(np.float64)
        features = frame.to_numpy(np.float32)  # (N, D)
        assert features.shape[1] == self.feature_dim, f"{features.shape[1]} columns for {self.feature_dim} names"
        if not np.isfinite(features).all():
            raise ValueError("eGeMAPS descriptors are not finite; please report it")
        return starts, np.ascontiguousarray(features)
