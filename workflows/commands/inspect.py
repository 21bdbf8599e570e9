"""Extract the language, acoustic and visual streams of one video and summarise them.

Examples:
  mcr inspect clip.mp4
  mcr inspect clip.mp4 --json | jq .transcript
  mcr inspect clip.mp4 --visual pyfeat --whisper tiny.en
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from extractors.base import DEFAULT_EXTRACTORS

MODALITIES = ("language", "acoustic", "visual")  # the streams summarised (the model's; not the voice stream)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from extractors import available

    p.add_argument("video", help="a video (or audio) file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    p.add_argument("--visual", default=DEFAULT_EXTRACTORS["visual"], choices=available("visual") or None,
                   help="visual backend (default: %(default)s)")
    p.add_argument("--acoustic", default=DEFAULT_EXTRACTORS["acoustic"], choices=available("acoustic") or None,
                   help="acoustic extractor (default: %(default)s)")
    p.add_argument("--language", default=DEFAULT_EXTRACTORS["language"], choices=available("language") or None,
                   help="language extractor (default: %(default)s)")
    p.add_argument("--whisper", default=None, metavar="NAME|PATH",
                   help="whisper model size or checkpoint path (default: the extractor's, base)")
    p.add_argument("--fps", type=float, default=None, help="visual sampling rate in frames per second")


def inspect_video(path: str, *, extractor_names: dict[str, str] | None = None, whisper: str | None = None,
                  fps: float | None = None) -> dict:
    """Decode ``path`` once, run one extractor per modality (default: ``DEFAULT_EXTRACTORS``'s) and return the
    summary as a JSON-able dict. Extractors that reuse another's results (whisper's encoder states from the ASR
    pass) run after it, as in ``mcr extract``.

    Raises :class:`pipeline.errors.StageError` subclasses naming the file and the failing stage.
    """
    from extractors import EXTRACTORS, create
    from extractors.media import decode
    from pipeline.errors import StageError

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    decode_kwargs = {"fps": fps} if fps is not None else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        media = decode(path, **decode_kwargs)
    seconds["decode"] = time.perf_counter() - t0

    names = extractor_names or {m: DEFAULT_EXTRACTORS[m] for m in MODALITIES}
    tables, shared = {}, {key: {} for name in names.values() for key in EXTRACTORS[name].reuses}
    for modality, name in sorted(names.items(), key=lambda item: bool(EXTRACTORS[item[1]].reuses)):
        overrides = {"model": whisper} if whisper and hasattr(EXTRACTORS[name].config_class, "model") else {}
        if modality == "visual" and fps is not None:
            overrides = {"fps": fps}
        extractor = create(name, **overrides)
        t0 = time.perf_counter()
        try:
            tables[modality] = extractor.extract_shared(media, shared)
        except StageError:
            raise
        except Exception as exc:  # a library failing deep inside: name the file and the stage
            raise StageError(path, modality, f"{type(exc).__name__}: {exc}") from exc
        seconds[modality] = time.perf_counter() - t0
    seconds["total"] = sum(seconds.values())

    words = tables["language"].to_pylist()
    visual = tables["visual"]
    faces = visual.column("face").to_pylist()
    acoustic_dim = tables["acoustic"].schema.field("features").type.list_size
    return {
        "path": str(path),
        "duration": round(media.duration, 3),
        "transcript": " ".join(w["word"] for w in words).strip(),
        "words": [{k: w[k] for k in ("word", "start", "end", "probability", "utterance", "in_vocab")} for w in words],
        "acoustic_frames": tables["acoustic"].num_rows,
        "acoustic_dim": acoustic_dim,
        "visual_frames": visual.num_rows,
        "face_ratio": (sum(faces) / len(faces)) if faces else 0.0,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "real_time_factor": round(seconds["total"] / media.duration, 3) if media.duration else None,
        "warnings": list(dict.fromkeys(media.warnings + [str(w.message) for w in caught])),
    }


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import StageError

    names = {"language": args.language, "acoustic": args.acoustic, "visual": args.visual}
    try:
        summary = inspect_video(args.video, extractor_names=names, whisper=args.whisper, fps=args.fps)
    except (StageError, FileNotFoundError) as exc:
        print(f"mcr inspect: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    s = summary
    print(f"{s['path']}  ({s['duration']:.2f} s)")
    print(f"  transcript     : {s['transcript']!r}")
    print(f"  words          : {len(s['words'])} ({sum(w['in_vocab'] for w in s['words'])} in the GloVe vocabulary)")
    print(f"  acoustic       : {s['acoustic_frames']} frames x {s['acoustic_dim']} features")
    print(f"  visual         : {s['visual_frames']} frames, face in {100 * s['face_ratio']:.0f}%")
    timing = ", ".join(f"{k} {v:.2f} s" for k, v in s["seconds"].items())
    print(f"  time           : {timing}  ({s['real_time_factor']}x real time, model loading included)")
    for w in s["warnings"]:
        print(f"  warning        : {w}")
    return 0
