"""CMU-MOSEI (Zadeh et al., 2018): about 3.8k YouTube videos, 23k segments with sentiment and six emotions.

Reads the full videos ``<video_id>.mp4`` found by name anywhere under RAW_DIR (the raw release keeps them in
``Raw/Videos/Full/Combined/``) and CMU-MultimodalSDK's ``CMU_MOSEI_Labels.csd`` (or ``labels``: a .csd, or a
JSON/CSV table with ``video_id``, ``start``, ``end`` and the label columns). Its seven columns are
[sentiment, happy, sad, anger, surprise, disgust, fear]: ``label`` = the sentiment in [-3, 3], and one column per
emotion (presence in [0, 3]). Splits: the labels file's ``split`` column, else the SDK's standard folds
(``folds``, or ``cmu_mosei_std_folds.py`` found under RAW_DIR), else none.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.recipes.cmu_sdk import full_video_rows, sdk_segments

LABELS = ("label", "happy", "sad", "anger", "surprise", "disgust", "fear")


def prepare(raw_dir: Path, *, labels: str | Path | None = None,
            folds: str | Path | None = None) -> list[dict[str, Any]]:
    segments = sdk_segments(raw_dir, labels, folds, csd_name="CMU_MOSEI_Labels.csd",
                            folds_name="cmu_mosei_std_folds.py", names=LABELS)
    return full_video_rows(raw_dir, segments, "Raw/Videos/Full/Combined")
