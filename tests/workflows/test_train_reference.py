"""Training on real clips gives, for the same seed, the losses recorded with the trainer as it was before the CPU
speed work (issue 19): float32 on CPU, with the options changed since then at their values of that time
(``PRE_SPEED_WORK``: no stream-rate pooling, no length bucketing, the best epoch selected on the validation loss, the
patiences of that time).

The reference losses were recorded by running this module's ``_train`` on the code at commit eaea491 (before the
speed work) on the six shared CREMA-D clips, extracted with the extractors named in ``EXTRACTORS``. A change of
those extractors' output changes the inputs: ``INPUT_SUMS`` says so first, apart from the trainer.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.extractors.media_files import cremad_clips
from workflows.cli import main as mcr

pytestmark = pytest.mark.slow  # whisper, MediaPipe and librosa on six clips, then a small training run

EXTRACTORS = ["--language", "whisper-glove", "--acoustic", "librosa", "--visual", "mediapipe"]
SETTINGS = {"batch_size": 2, "lr": 3e-3, "epochs": 4, "seed": 0, "cpu_threads": 1, "amp": False,
            "model": {"d_model": 16, "n_heads": 2, "n_layers": 1}}


@pytest.fixture(scope="module")
def cremad_store(tmp_path_factory):
    clips = cremad_clips()
    root = tmp_path_factory.mktemp("reference")
    manifest = root / "manifest.csv"
    codes = sorted(clips)
    pd.DataFrame({"path": [str(clips[c]) for c in codes], "video_id": [f"cremad_{c}" for c in codes],
                  "split": [{"NEU": "valid", "SAD": "test"}.get(c, "train") for c in codes],
                  "label": codes}).to_csv(manifest, index=False)
    assert mcr(["extract", str(manifest), "--store", str(root / "store"), "--workers", "1", "--no-progress",
                *EXTRACTORS]) == 0
    return root / "store"


def _train(store, out, extra: dict | None = None) -> dict:
    """Input sums per split and modality, the per-epoch losses and the test loss of one small run."""
    from pipeline.sources import training_splits
    from workflows.train import train_run
    from workflows.train_config import configure, fit_model_to_data

    model_cfg, tcfg = configure("mosi", {**SETTINGS, **(extra or {})})
    splits, _ = training_splits(store)
    sums = {f"{name}.{m}": float(np.float64(getattr(s, m)).sum()) for name, s in sorted(splits.items())
            for m in ("language", "visual", "acoustic")}
    result = train_run(splits, fit_model_to_data(model_cfg, splits["train"]), tcfg, out, progress=False,
                       log=lambda _: None)
    history = json.loads((out / "history.json").read_text())
    return {"sums": sums, "train_loss": [h["train_loss"] for h in history],
            "val_loss": [h["val_loss"] for h in history], "test_loss": result["test"]["loss"]}


# recorded at eaea491 (see the module's docstring); float32, one thread
INPUT_SUMS = {"test.language": -1.1469644280150533, "test.visual": 32.02838778339314,
              "test.acoustic": 1020634.3766951113, "train.language": -4.587857712060213,
              "train.visual": 187.60306124411056, "train.acoustic": 4598020.195877435,
              "valid.language": -1.1469644280150533, "valid.visual": 29.667341436439713,
              "valid.acoustic": 1051056.4362830245}
TRAIN_LOSS = [2.4991962909698486, 1.726519227027893, 1.2447745203971863, 1.17408287525177]
VAL_LOSS = [2.210716724395752, 2.7346746921539307, 3.2659530639648438, 3.6849286556243896]
TEST_LOSS = 1.868257999420166
PRE_SPEED_WORK = {"stream_rate": None, "bucket": False, "select_on": "loss", "early_stop_patience": 25,
                  "lr_patience": 10}
"""The options added or changed since eaea491, at the values the trainer had then."""


def test_float32_training_gives_the_losses_recorded_before_the_speed_work(cremad_store, tmp_path):
    got = _train(cremad_store, tmp_path / "run", PRE_SPEED_WORK)
    assert got["sums"] == pytest.approx(INPUT_SUMS, rel=1e-6), "the extractors' output changed, not the trainer"
    assert got["train_loss"] == pytest.approx(TRAIN_LOSS, abs=1e-5)
    assert got["val_loss"] == pytest.approx(VAL_LOSS, abs=1e-5)
    assert got["test_loss"] == pytest.approx(TEST_LOSS, abs=1e-5)
