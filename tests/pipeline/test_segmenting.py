import pytest

from pipeline.segmenting import utterance_segments, window_segments
from pipeline.subtitles import to_webvtt


def test_utterance_segments_follow_words_and_split_long_ones():
    words = [{"utterance": 0, "start": 0.5, "end": 0.9}, {"utterance": 0, "start": 1.0, "end": 1.4},
             {"utterance": 1, "start": 3.0, "end": 70.0}]
    segs = utterance_segments("v", words, 80.0, max_len=30.0)
    assert [(s.start, s.end) for s in segs][0] == (0.5, 1.4)
    assert len(segs) == 1 + 3  # 67 s utterance split in three
    assert all(a.end <= b.start for a, b in zip(segs, segs[1:]))
    assert len({s.segment_id for s in segs}) == len(segs)


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
