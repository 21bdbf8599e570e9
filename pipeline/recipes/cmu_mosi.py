"""CMU-MOSI (Zadeh et al., 2016): 93 YouTube monologues, 2199 opinion segments with a sentiment score in [-3, 3].

Reads the full videos ``Raw/Video/Full/<video_id>.mp4`` (found by name anywhere under RAW_DIR) and the opinion
labels of CMU-MultimodalSDK, ``CMU_MOSI_Opinion_Labels.csd`` (or ``labels``: a .csd, or a JSON/CSV table with
``video_id``, ``start``, ``end``, ``label`` and optionally ``segment_id``, ``seg_index``, ``split``). One row per
opinion segment: its interval in the full video, ``label`` = the sentiment score, ``segment_id`` = the SDK's
``<video_id>[i]``. Splits: the labels file's ``split`` column, else the SDK's standard folds
(``folds``, or ``cmu_mosi_std_folds.py`` found under RAW_DIR), else none.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.recipes.cmu_sdk import full_video_rows, sdk_segments

LABELS = ("label",)


def prepare(raw_dir: Path, *, labels: str | Path | None = None,
            folds: str | Path | None = None) -> list[dict[str, Any]]:
    segments = sdk_segments(raw_dir, labels, folds, csd_name="CMU_MOSI_Opinion_Labels.csd",
                            folds_name="cmu_mosi_std_folds.py", names=LABELS)
    return full_video_rows(raw_dir, segments, "Raw/Video/Full")
