"""The report's attention sample has words (issue 18 item 5), and the page says so when no sample has any."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from tests.workflows.synthetic import train_tiny
from workflows.cli import main as mcr


@pytest.mark.slow
def test_the_attention_sample_has_words_and_the_page_says_when_none_has(tmp_path, capsys):
    data, run = train_tiny(tmp_path)
    raw = pickle.loads(data.read_bytes())
    raw["test"]["text"] = raw["test"]["text"][:, 1:].copy()  # unaligned (lengths differ): each stream its own padding
    raw["test"]["text"][:3] = 0  # the first three test samples have no words (a clip whisper heard nothing in)
    (tmp_path / "some").mkdir()
    some = tmp_path / "some" / data.name
    some.write_bytes(pickle.dumps(raw, protocol=4))
    assert mcr(["report", str(run), "--data", str(some)]) == 0
    html = (run / "report" / "index.html").read_text()
    assert "<code>vid0_3</code>" in html and "has words" not in html  # the first sample with words: the 4th

    raw["test"]["text"][:] = 0
    none = tmp_path / "none" / data.name
    none.parent.mkdir()
    none.write_bytes(pickle.dumps(raw, protocol=4))
    assert mcr(["report", str(run), "--data", str(none)]) == 0
    html = (run / "report" / "index.html").read_text()
    assert "None of the 8 samples of this split has words" in html

    assert mcr(["report", str(run), "--data", str(some), "--sample", "1"]) == 0  # chosen by hand: said too
    assert "Sample 1 has no words" in (run / "report" / "index.html").read_text()
    assert np.isfinite(raw["test"]["labels"]).all()
