"""Small hand-made streams with the extractors' column layout, for store and view tests."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from extractors.base import features_column


def meta(modality: str, dim: int, shift) -> dict[str, str]:
    return {"extractor": f"test-{modality}", "modality": modality, "config_hash": "0" * 16,
            "feature_names": json.dumps([f"{modality}_{i}" for i in range(dim)]), "frame_shift": json.dumps(shift)}


def language(words: list[tuple[str, float, float]], features: np.ndarray) -> pa.Table:
    n = len(words)
    return pa.table({
        "utterance": pa.array([0] * n, pa.int32()),
        "word": pa.array([w for w, _, _ in words], pa.string()),
        "start": pa.array([s for _, s, _ in words], pa.float64()),
        "end": pa.array([e for _, _, e in words], pa.float64()),
        "probability": pa.array([0.9] * n, pa.float32()),
        "in_vocab": pa.array([True] * n),
        "features": features_column(features, features.shape[1]),
    })


def frames(times: np.ndarray, features: np.ndarray, face: np.ndarray | None = None) -> pa.Table:
    columns = {"time": pa.array(times, pa.float64())}
    if face is not None:
        columns["face"] = pa.array(face, pa.bool_())
    columns["features"] = features_column(features, features.shape[1])
    return pa.table(columns)
