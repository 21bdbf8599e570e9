"""The benchmarks' helpers: the WER of benchmarks/extract.py and the section writer of benchmarks/report.py."""
from __future__ import annotations

import math

from benchmarks import report
from benchmarks.extract import normalise, word_error_rate


def _edits(hypothesis: list[str], reference: list[str]) -> int:
    """Word-level Levenshtein distance, the definition jiwer's WER counts."""
    row = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        prev, row[0] = row[0], i
        for j, r in enumerate(reference, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (h != r))
    return row[-1]


def test_wer_is_all_edits_over_all_reference_words():
    reference = normalise("Don't forget a jacket.")
    assert reference == ["don't", "forget", "a", "jacket"]
    hyps = [normalise(t) for t in ("don't forget a jacket", "Don't forget to jack it!", "", "forget a jacket now")]
    expected = sum(_edits(h, reference) for h in hyps) / (len(reference) * len(hyps))
    assert abs(word_error_rate(hyps, reference) - expected) < 1e-12
    assert word_error_rate([reference], reference) == 0.0
    assert math.isnan(word_error_rate([], reference))


def test_write_section_replaces_its_own_section_only(tmp_path):
    doc = tmp_path / "docs" / "benchmarks.md"
    report.write_section("a", "first", doc)
    report.write_section("b", "other", doc)
    report.write_section("a", "second", doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert "<!-- BEGIN a -->\nsecond\n<!-- END a -->" in text and "first" not in text
    assert text.index("BEGIN a") < text.index("BEGIN b") and "other" in text
    assert [p.name for p in doc.parent.iterdir()] == ["benchmarks.md"]
