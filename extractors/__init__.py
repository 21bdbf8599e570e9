"""Feature extractors: media decoding and one extractor per modality, found by name in a registry."""
from extractors.base import EXTRACTORS, Extractor, ExtractorConfig, Media, available, create, register

__all__ = ["EXTRACTORS", "Extractor", "ExtractorConfig", "Media", "available", "create", "register"]
