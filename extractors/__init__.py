"""Feature extractors: media decoding and one extractor per modality, found by name in a registry."""
from extractors.base import EXTRACTORS, Extractor, ExtractorConfig, Media, available, create, register
from extractors import acoustic, egemaps, whisper_states  # noqa: F401,E402  (librosa, egemaps, whisper-encoder)
from extractors import visual, visual_pyfeat  # noqa: F401,E402  (registers mediapipe, pyfeat)
from extractors import language, voice  # noqa: F401,E402  (registers whisper-glove, silero-vad)

__all__ = ["EXTRACTORS", "Extractor", "ExtractorConfig", "Media", "available", "create", "register"]
