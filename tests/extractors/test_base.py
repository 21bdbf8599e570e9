import numpy as np
import pytest

from extractors import Media, available, create
from extractors.base import DEFAULT_EXTRACTORS, EXTRACTORS, register


def _media(duration=2.0, sr=16000, fps=10):
    t = np.arange(int(duration * sr)) / sr
    audio = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    times = np.arange(int(duration * fps)) / fps
    frames = np.zeros((len(times), 8, 8, 3), np.uint8)
    return Media("synthetic.wav", duration, audio, sr, frames, times)


def test_crop_keeps_times_relative_to_the_video():
    part = _media().crop(0.5, 1.5)
    assert part.start == 0.5 and part.duration == pytest.approx(1.0)
    assert len(part.audio) == 16000
    assert part.frame_times.min() >= 0.5 and part.frame_times.max() < 1.5
    table = create("librosa").extract(part)
    times = table.column("time").to_numpy()
    assert times[0] == pytest.approx(0.5) and times[-1] == pytest.approx(1.5, abs=0.011)
    nested = part.crop(1.0, None)
    assert nested.start == 1.0 and nested.duration == pytest.approx(0.5) and len(nested.audio) == 8000


def test_registry_lists_extractors_by_modality_and_rejects_unknown_names():
    assert "librosa" in available("acoustic")
    assert set(available("visual")) >= {"mediapipe", "pyfeat"}
    assert not set(available("acoustic")) & set(available("visual"))
    with pytest.raises(KeyError, match="unknown extractor"):
        create("no-such-extractor")
    for modality, name in DEFAULT_EXTRACTORS.items():
        assert name in available(modality)


def test_bad_options_and_registrations_raise_even_under_python_O():
    with pytest.raises(ValueError, match="no option 'hopp'.*'hop'"):
        create("librosa", hopp=0.02)
    with pytest.raises(TypeError, match="AcousticConfig"):
        EXTRACTORS["librosa"](EXTRACTORS["mediapipe"].config_class())
    with pytest.raises(ValueError, match="registered twice"):
        register(EXTRACTORS["librosa"])


def test_config_hash_values_are_those_stores_recorded():
    """Stores compare these hashes with the ones they recorded: the values must never change by accident.

    They change only with an extractor's output, through its config: issue 8 added ``top_db`` to librosa (the
    MFCC and spectral-contrast floor no longer depends on the clip's loudest frame; was e24806a26e5442aa, hop 0.02
    7e38526d6338e222) and the speech regions, batch and 8-s short window to whisper-glove (was 27d6f7aea6901d7f,
    then 2c61604fe61faa72 until ``encoder_precision``: its default runs the encoder in bfloat16 where the CPU
    has it; then 5d07bcdd6a8f8ef0 until issue 20's ``engine`` (CTranslate2 by default), ``compute_type`` and
    ``fallback`` (one retry, not openai-whisper's five), then 59c1bc7c81addb95 until ``retry_window_seconds`` (a failed 8-s
    window is decoded again in a 16-s one))."""
    assert create("librosa").config_hash() == "73a29e3858eda1d2"
    assert create("librosa", hop=0.02).config_hash() == "e01203ef2fd25481"
    assert create("mediapipe").config_hash() == "3def4e47c8784ce1"
    assert create("whisper-encoder").config_hash() == "488786143436ed0a"  # its windows did not change
    assert create("whisper-glove").config_hash() == "b5504b0a4839ef46"


def test_config_hash_follows_the_config():
    a, b = create("librosa"), create("librosa", hop=0.02)
    assert a.config_hash() == create("librosa").config_hash()
    assert a.config_hash() != b.config_hash()
    assert b.frame_shift == pytest.approx(0.02)
