"""The whisper engines and the temperature fallback, end to end and in the steady state (issue 20, items 1 and 2).

Media: the repeated-sentence footage (the six CREMA-D clips joined again and again without pauses by ffmpeg's concat
demuxer, ~3 min: whisper's repetition check trips there, :func:`benchmarks.media.repeated_footage`) and the paused
3-minute video (``tests/workflows/joined_video.py``). For each engine with openai-whisper's fallback (5 retries: the
code before issue 20) and the default one retry: ``mcr extract --workers 1`` end to end (a fresh process: start-up,
model loading and all default streams included) and the language stream's steady state (its model loaded, one
process, one thread). The baseline is openai-whisper with 5 retries, measured in the same run.

  python benchmarks/whisper_engines.py --write
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.extract_corpus import cpu_seconds  # noqa: E402
from benchmarks.extract_speed import SENTENCE, mcr_extract  # noqa: E402
from benchmarks.media import repeated_footage  # noqa: E402


WHISPER_CONFIGS = [("openai-whisper", 5), ("openai-whisper", 1), ("ctranslate2", 5), ("ctranslate2", 1)]


def _sets(engine: str, fallback: int) -> dict:
    return {"engine": engine, "fallback": fallback}


def mcr_extract_one(path: Path, engine: str, fallback: int) -> tuple[float, float, str]:
    """``mcr extract`` of ``path`` alone, ``--workers 1``, at this engine and fallback: wall seconds, CPU seconds
    (every process it started), the words."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        (folder / path.name).symlink_to(path)
        sets = [x for k, v in _sets(engine, fallback).items() for x in ("--set", f"language.{k}={v}")]
        wall, cpu, words = mcr_extract(folder, 1, sets)
    return wall, cpu, " ".join(words.values())


def language_steady(path: Path, engine: str, fallback: int) -> tuple[float, float]:
    """Wall and CPU seconds of the language stream alone on ``path``'s audio, its model loaded, torch on 1 thread."""
    import torch

    from extractors import create
    from extractors.media import decode

    torch.set_num_threads(1)
    extractor = create("whisper-glove", threads=1, **_sets(engine, fallback))
    media = decode(str(path), video=False)
    extractor.extract(media.crop(0.0, 2.0))  # models loaded
    started, cpu = time.perf_counter(), cpu_seconds()
    extractor.extract(media)
    return time.perf_counter() - started, cpu_seconds() - cpu


def whisper_engines(*, seconds: float, write: bool) -> int:
    """The ``--whisper`` rows: engines x fallback on the repeated-sentence and the paused footage."""
    import jiwer

    from benchmarks.report import machine, write_section
    from extractors.media import probe
    from tests.workflows.joined_video import join_clips

    clips = sorted((ROOT / ".." / "shared" / "data" / "cremad").resolve().glob("*.flv"))
    assert clips, "the CREMA-D clips are needed"
    tmp = Path(tempfile.mkdtemp())
    repeated, paused, spans = tmp / "repeated.mp4", tmp / "paused.mp4", []
    media = {"repeated sentences": (repeated, repeated_footage(clips, repeated, seconds=seconds)),
             "paused": (paused, (join_clips(clips, paused, seconds=seconds, spans=spans), len(spans))[1])}
    rows = []
    for name, (path, sentences) in media.items():
        duration, truth = probe(str(path))[0], " ".join([SENTENCE] * sentences)
        for engine, fallback in WHISPER_CONFIGS if name == "repeated sentences" else WHISPER_CONFIGS[::3]:
            load = os.getloadavg()[0]
            wall, cpu, words = mcr_extract_one(path, engine, fallback)
            steady_wall, steady_cpu = language_steady(path, engine, fallback)
            rows.append((name, duration, engine, fallback, wall, cpu, len(words.split()), jiwer.wer(truth, words),
                         steady_wall, steady_cpu, load))
            print(rows[-1], flush=True)
    base = {r[0]: r for r in rows if (r[2], r[3]) == WHISPER_CONFIGS[0]}
    lines = ["## Whisper engines and the temperature fallback (`benchmarks/whisper_engines.py`)", "",
             f"Machine: {machine()}, shared with other jobs (\"load\": the 1-minute load average before each row; "
             "above 2 the wall times are those of a slower machine, CPU seconds less so). Media: the six CREMA-D "
             f"clips joined in turn without pauses by ffmpeg's concat demuxer ({media['repeated sentences'][1]} "
             "sentences), and with 1.5-s pauses (`tests/workflows/joined_video.py`). \"mcr extract\": `mcr "
             "extract FOLDER --workers 1` into an empty store, a fresh process, every default stream, start-up "
             "included (CPU: all its processes). \"language, steady\": the language stream alone on the decoded "
             "audio, model loaded, one thread. Baseline (\"x\"): openai-whisper with 5 fallback decodes, the "
             "code before issue 20, in the same run. WER against \"don't forget a jacket\" once per clip.", "",
             "| media | engine | fallback | mcr extract wall (s) | x real time | vs baseline | CPU s | words | WER | "
             "language, steady: wall (s) | CPU s | vs baseline (CPU) | load |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, duration, engine, fallback, wall, cpu, count, wer, steady_wall, steady_cpu, load in rows:
        b = base[name]
        lines.append(f"| {name} ({duration:.0f} s) | {engine} | {fallback} | {wall:.1f} | {duration / wall:.2f}x | "
                     f"**{b[4] / wall:.2f}x** | {cpu:.1f} | {count} | {wer:.3f} | {steady_wall:.1f} | "
                     f"{steady_cpu:.1f} | **{b[9] / steady_cpu:.2f}x** | {load:.1f} |")
    report = "\n".join(lines)
    print(report)
    if write:
        write_section("extract_whisper", report)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=180.0, help="length of each footage")
    p.add_argument("--write", action="store_true", help="also write the section of docs/benchmarks.md")
    args = p.parse_args(argv)
    return whisper_engines(seconds=args.seconds, write=args.write)


if __name__ == "__main__":
    raise SystemExit(main())
