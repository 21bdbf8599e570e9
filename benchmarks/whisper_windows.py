"""The whisper window of a short speech region: words and CPU of the language stream for each choice, in one run.

A speech region of at most ``short_content_seconds`` (4 s) is encoded in a window shorter than whisper's 30 s
(``short_window_seconds``); a short window whose first decode fails can be decoded again in a wider one
(``retry_window_seconds``). Each setting runs the language stream alone (models loaded, one process, the speech
regions as ``mcr extract`` makes them) on three media of :mod:`benchmarks.extract_speed`: the paused footage (the
six CREMA-D sentences joined with pauses), the dense speech (sentences of many speakers back to back) and a corpus
of short TESS clips ("say the word ...", one word to hear). WER against what was said, with extract_speed's word
normalisation; CPU: this process's seconds.

  python benchmarks/whisper_windows.py --ravdess RAVDESS_DIR --tess TESS_DIR [--write]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (short window, retry window) in seconds; None: whisper's own 30-s windows / no retry
SETTINGS = [(8.0, None), (16.0, None), (None, None), (8.0, 16.0), (8.0, 30.0)]
MEDIA = ("paused", "dense speech", "short clips")


def measure(decoded: dict, truths: dict, short: float | None, retry: float | None) -> dict:
    """{medium: (WER, CPU s, files with no word)} of the language stream with these windows."""
    import extractors
    from benchmarks.extract_speed import wer, words_of

    extractor = extractors.create("whisper-glove", short_window_seconds=short, retry_window_seconds=retry)
    extractor.extract(next(iter(decoded["short clips"].values())))  # the model loaded before timing
    out = {}
    for name in MEDIA:
        started = time.process_time()
        words = {path: words_of(extractor.extract(m).column("word").to_pylist()) for path, m in decoded[name].items()}
        out[name] = (wer(truths[name], words), time.process_time() - started, sum(not w for w in words.values()))
    return out


def main(argv: list[str] | None = None) -> int:
    import warnings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ravdess", type=Path, required=True, help="RAVDESS speech (Actor_XX folders)")
    p.add_argument("--tess", type=Path, required=True, help="TESS (folders of OAF_/YAF_ wavs)")
    p.add_argument("--clips", type=int, default=100, help="short clips in the corpus")
    p.add_argument("--write", action="store_true", help="also write the section of docs/benchmarks.md")
    args = p.parse_args(argv)
    from benchmarks.extract_speed import build_media
    from benchmarks.report import machine, write_section

    warnings.simplefilter("ignore")  # audio-only clips: one MissingStreamWarning each
    media = build_media(Path(tempfile.mkdtemp()), argparse.Namespace(ravdess=args.ravdess, tess=args.tess,
                                                                     seconds=180.0, clips=args.clips))
    from extractors.media import decode

    truths = {name: media[name][2] for name in MEDIA}
    decoded = {name: {path: decode(path, fps=1) for path in truths[name]} for name in MEDIA}
    rows = []
    for short, retry in SETTINGS:
        rows.append({"short": short, "retry": retry, **measure(decoded, truths, short, retry)})
        print(json.dumps(rows[-1]), flush=True)
    report = render(rows, media, machine())
    print(report)
    if args.write:
        write_section("whisper_windows", report)
    return 0


def render(rows: list[dict], media: dict, machine: str) -> str:
    def window(seconds):
        return "30 s (whisper's own)" if seconds is None else f"{seconds:g} s"

    lines = ["## The whisper window of a short speech region (`benchmarks/whisper_windows.py`)", "",
             f"Machine: {machine}. The language stream alone, models loaded, one process; WER against what was said; "
             "CPU: seconds of this process for the whole medium. Media: " + "; ".join(
                 f"{name}: {media[name][3]}, {media[name][1]:.0f} s" for name in MEDIA) + ".", "",
             "| short window | retry window | " + " | ".join(f"{n}: WER | CPU s" for n in MEDIA) +
             " | short clips with no word |", "|---|---|" + "---:|---:|" * len(MEDIA) + "---:|"]
    for r in rows:
        cells = " | ".join(f"{r[n][0]:.3f} | {r[n][1]:.1f}" for n in MEDIA)
        retry = "none" if r["retry"] is None or r["short"] is None else window(r["retry"])
        lines.append(f"| {window(r['short'])} | {retry} | {cells} | {r['short clips'][2]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
