"""`mcr predict` with an emotion classifier (e.g. one trained on RAVDESS) prints and writes every emotion's
probability beside the predicted one."""
from __future__ import annotations

import numpy as np

from workflows.commands.predict import shown_rows
from workflows.predict import prediction_columns, write_table

RAVDESS = ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]  # sorted: the class order


def test_the_eight_emotions_are_printed_and_written_with_their_probabilities(tmp_path):
    import pandas as pd

    logits = np.array([[0.0, 0, 0, 0, 0, 0, 3.0, 0], [2.0, 0, 0, 0, 0, 0, 0, 1.0]], np.float32)  # (N, 8)
    frame = pd.DataFrame({"video_id": ["a", "b"], "start": [0.0, 0.0], "end": [3.0, 3.5],
                          "streams": ["language,acoustic"] * 2, "transcript": ["Kids are talking by the door"] * 2})
    for name, values in prediction_columns("classification", logits, RAVDESS).items():
        frame[name] = values
    printed = shown_rows(frame).to_string(index=False)
    header = printed.splitlines()[0].split()
    assert [h for h in header if h.startswith("p_")] == [f"p_{e}" for e in RAVDESS]
    assert "predicted_class" in header and printed.splitlines()[1].split()[header.index("predicted_class")] == "sad"
    p_sad = np.exp(3) / (np.exp(3) + 7)
    assert f"{p_sad:.2f}" in printed.splitlines()[1]  # rounded to 0.01 on screen
    written = pd.read_csv(write_table(frame, tmp_path / "emotions.csv"))
    assert list(written["predicted_class"]) == ["sad", "angry"]
    probs = written[[f"p_{e}" for e in RAVDESS]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-5) and abs(probs[0, RAVDESS.index("sad")] - p_sad) < 1e-6
