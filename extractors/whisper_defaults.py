"""Whisper window lengths shared by the language and encoder-states extractors and the transcription options (a
module of its own: the extractors' configs import it without importing torch or whisper)."""

SHORT_WINDOW_SECONDS = 8.0
"""The window of a speech region of at most 4 s, shared by the words and the encoder states."""
RETRY_WINDOW_SECONDS = 16.0
"""A short window whose first decode fails is decoded again in a window this long: the 8-s window alone dropped the
one word after a carrier phrase (TESS WER 0.24, 14 of 100 clips with no word; ``benchmarks/whisper_windows.py``)."""
