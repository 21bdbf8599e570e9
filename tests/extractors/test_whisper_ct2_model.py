"""The CTranslate2 whisper model's load: without torch, once per process and settings, shared with the engine."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from extractors import whisper_ct2_engine, whisper_ct2_model
from extractors.assets import resolve_whisper_ct2
from extractors.whisper_ct2_engine import shared_ct2_engine
from extractors.whisper_ct2_model import shared_ct2_model

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, **env: str) -> str:
    """The stdout of ``code`` in a fresh interpreter (this checkout first on the path), with ``env`` added."""
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), environment.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment | env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_resolving_and_loading_the_model_imports_no_torch():
    """Reading the bundled weights (and converting them for openai-whisper's engine) needs no torch import."""
    out = _python("""
        import sys
        from extractors.assets import resolve_whisper_ct2
        from extractors.whisper_ct2_model import shared_ct2_model
        model = shared_ct2_model(resolve_whisper_ct2("base"), compute_type="float32", threads=1)
        print(model.n_mels, "torch" in sys.modules)
    """)
    assert out.split() == ["80", "False"]


def test_the_engine_uses_the_shared_model_and_loads_it_once(monkeypatch):
    monkeypatch.setattr(whisper_ct2_model, "_LOADS", {})
    monkeypatch.setattr(whisper_ct2_engine, "_MODELS", {})
    loads = []
    real = whisper_ct2_model.load_ct2_whisper
    monkeypatch.setattr(whisper_ct2_model, "load_ct2_whisper", lambda *a, **k: loads.append(1) or real(*a, **k))
    directories = resolve_whisper_ct2("base")
    model = shared_ct2_model(directories, compute_type="float32", threads=1)
    assert shared_ct2_model(directories, compute_type="auto", threads=1) is model  # "auto" is float32 on CPU
    engine = shared_ct2_engine(directories, compute_type="float32", threads=1)
    assert engine.model is model and engine.n_state == 512
    assert shared_ct2_model(directories, compute_type="float32", threads=2) is not model  # other settings
    assert len(loads) == 2


def test_a_failed_load_raises_where_the_model_is_asked_for_and_is_tried_again(tmp_path, monkeypatch):
    monkeypatch.setattr(whisper_ct2_model, "_LOADS", {})
    for _ in range(2):
        with pytest.raises(ValueError, match=f"{tmp_path}: no model.bin"):
            shared_ct2_model([tmp_path], compute_type="float32", threads=1)
