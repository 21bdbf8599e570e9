import numpy as np
import pytest

from pipeline.subtitles import to_webvtt
from workflows.annotate.segments import (clip_intervals, even_parts, merge_intervals, overlap_seconds, pause_cuts,
                                         silent_spans, split_long, total_seconds, utterance_segments, utterance_spans,
                                         window_segments)
from workflows.annotate.speech import speech_spans


def _words(*spans, utterance=0):
    return [{"utterance": utterance, "start": s, "end": e} for s, e in spans]


def test_intervals_merge_and_measure():
    assert merge_intervals([(3, 4), (0, 1), (0.5, 2), (4.2, 5)]) == [(0.0, 2.0), (3.0, 4.0), (4.2, 5.0)]
    assert merge_intervals([(3, 4), (4.2, 5)], gap=0.5) == [(3.0, 5.0)]
    assert merge_intervals([(2, 1), (float("nan"), 1)]) == []
    assert total_seconds([(0, 1), (0.5, 2)]) == 2.0
    assert overlap_seconds([(0, 2), (3, 5)], [(1, 4)]) == pytest.approx(2.0)


def test_every_stretch_of_speech_gets_an_utterance_with_or_without_words():
    speech = [(0.5, 1.5), (4.0, 5.0), (8.0, 9.0)]  # whisper heard nothing in the second stretch
    words = _words((0.6, 0.9), (1.0, 1.4)) + _words((8.1, 8.6), utterance=1) + _words((11.0, 11.3), utterance=2)
    spans = utterance_spans(speech, words)
    assert spans == [(0.5, 1.5), (4.0, 5.0), (8.0, 9.0), (11.0, 11.3)]  # a word the detector missed counts too
    assert overlap_seconds(speech, spans) == pytest.approx(total_seconds(speech))


def test_short_pauses_join_and_long_utterances_split_at_the_longest_pause():
    # 12 s of speech: words every 0.5 s, a 0.4-s pause at 6.0 s (bridged: under MIN_PAUSE), none elsewhere
    words = _words(*[(t, t + 0.45) for t in np.arange(0.0, 5.6, 0.5)]) + \
        _words(*[(t, t + 0.45) for t in np.arange(6.4, 12.0, 0.5)], utterance=1)
    speech = [(0.0, 5.95), (6.35, 12.0)]
    spans = utterance_spans(speech, words, max_len=8.0)
    assert len(spans) == 2 and spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(12.35)
    assert spans[0][1] == spans[1][0] == pytest.approx(6.175)  # the middle of the pause
    for s, e in spans:
        assert e - s <= 8.0
        assert not any(w["start"] < s < w["end"] for w in words)  # never inside a word


def test_a_stretch_without_pauses_is_cut_at_word_boundaries_into_balanced_parts():
    words = _words(*[(t, t + 0.5) for t in np.arange(0.0, 20.0, 0.5)])  # 20 s, back-to-back words
    parts = split_long(0.0, 20.0, words, [(0.0, 20.0)], max_len=8.0)
    assert len(parts) == 3 and parts[0][0] == 0.0 and parts[-1][1] == 20.0
    assert all(b[0] == a[1] for a, b in zip(parts, parts[1:]))
    assert all(e - s <= 8.0 for s, e in parts) and all(e - s >= 5.0 for s, e in parts)
    assert all(float(s * 2).is_integer() for s, _ in parts)  # at a word boundary (every 0.5 s)
    assert split_long(0.0, 17.0, max_len=8.0) == [(0.0, 8.0), (8.0, 16.0), (16.0, 17.0)]  # no words, no pauses
    with pytest.raises(ValueError, match="positive"):
        split_long(0.0, 5.0, max_len=0)


def test_silent_spans_and_even_parts():
    assert silent_spans([(1.0, 2.0), (2.5, 3.0), (6.0, 7.0)], 10.0, min_len=1.0) == [(0.0, 1.0), (3.0, 6.0),
                                                                                   (7.0, 10.0)]
    assert silent_spans([], 1.5, min_len=2.0) == []
    assert even_parts(0.0, 17.0, 8.0) == [(0.0, 5.667), (5.667, 11.333), (11.333, 17.0)]


def test_speech_frames_become_the_spans_they_cover():
    times = 0.005 + np.arange(0, 5, 0.01)  # the voice stream's 10-ms blocks, by their centres
    speech = ((times > 1.0) & (times < 1.5)) | (times > 4.9)
    spans = speech_spans(times, speech, 0.01)
    assert np.allclose(spans, [(1.0, 1.5), (4.9, 5.0)])
    assert speech_spans(times, np.zeros_like(speech), 0.01) == [] and speech_spans(np.zeros(0), np.zeros(0, bool),
                                                                                   0.01) == []


def test_utterance_segments_have_ids_in_time_order():
    segs = utterance_segments("v", _words((0.5, 0.9), (1.0, 1.4)), 80.0, speech=[(3.0, 4.0)])
    assert [(s.segment_id, s.start, s.end) for s in segs] == [("v_0000", 0.5, 1.4), ("v_0001", 3.0, 4.0)]


def test_silence_is_one_segment_over_the_whole_video():
    (seg,) = utterance_segments("v", [], 12.5)
    assert (seg.start, seg.end) == (0.0, 12.5)


def test_windows_cover_the_video_exactly():
    segs = window_segments("v", 25.0, 10.0)
    assert [(s.start, s.end) for s in segs] == [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    assert len(window_segments("v", 20.0, 10.0)) == 2
    for window in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            window_segments("v", 5.0, window)


def test_webvtt_format():
    vtt = to_webvtt([(61.25, 62.5, "happy: hello"), (0.0, 1.0, "neutral: hi")])
    lines = vtt.splitlines()
    assert lines[0] == "WEBVTT"
    assert "00:00:00.000 --> 00:00:01.000" in lines
    assert "00:01:01.250 --> 00:01:02.500" in lines
    assert lines.index("neutral: hi") < lines.index("happy: hello")


def test_speech_without_words_or_pauses_is_cut_at_the_deepest_dip_near_the_middle():
    dips = [(3.0, 0.12), (6.8, 0.20), (7.6, 0.15), (10.0, 0.3)]  # 10.0 would leave more than 8 s before it
    assert split_long(0.0, 14.0, dips=dips) == [(0.0, 6.8), (6.8, 14.0)]
    assert utterance_spans([(0.0, 14.0)], dips=dips) == [(0.0, 6.8), (6.8, 14.0)]
    words = _words((6.6, 7.0), (7.05, 7.9))  # a dip inside a word is no place to cut; the words' boundary is
    assert split_long(0.0, 14.0, words, dips=dips) == [(0.0, 7.025), (7.025, 14.0)]


def test_a_pause_between_words_starts_a_row_whatever_the_detector_heard_in_it():
    # the detector hears one stretch (noise in the pause), the words have a 0.6-s pause: two rows
    words = [{"start": 0.0, "end": 0.5}, {"start": 0.5, "end": 1.0}, {"start": 1.6, "end": 2.0}]
    assert utterance_spans([(0.0, 2.0)], words) == [(0.0, 1.3), (1.3, 2.0)]
    assert utterance_spans([(0.0, 2.0)], words, min_pause=0.7) == [(0.0, 2.0)]
    assert pause_cuts(0.0, 2.0, words, min_pause=0.5) == [(0.0, 1.3), (1.3, 2.0)]


def test_no_row_outside_the_video():
    words = [{"start": 9.5, "end": 10.4}]
    assert utterance_spans([(-0.2, 1.0), (9.0, 10.5)], words, duration=10.0) == [(0.0, 1.0), (9.0, 10.0)]
    assert clip_intervals([(-1.0, 0.0), (3.0, 12.0)], 10.0) == [(3.0, 10.0)]
