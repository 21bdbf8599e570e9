"""Do two processes on two cores slow each other with no Dask at all? (issue 20, item 4: "two workers worth two")

Each process runs only whisper's CTranslate2 model (the bundled base weights, float32, one thread): a 30-s window
of real speech encoded and decoded greedily ``--repeats`` times. The script times one process alone, then two at
once, ``--pairs`` times, alternating; if two at once take longer each (and their CPU seconds grow with it), the
cores share something the model needs (caches, memory bandwidth), and no scheduler can win that back.

    python benchmarks/core_contention.py AUDIO_DIR [--pairs 3] [--repeats 8]

AUDIO_DIR: a folder of speech files (searched recursively for .wav, .flac, .mp3), e.g. RAVDESS's ``Actor_01``.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WINDOW_S = 30
PROMPT = [[50258, 50259, 50359, 50363]]  # start of transcript, English, transcribe, no timestamps


def window(audio_dir: Path):
    """The first 30 s of the folder's speech files joined, at 16 kHz."""
    import librosa
    import numpy as np

    files = sorted(p for p in audio_dir.rglob("*") if p.suffix.lower() in {".wav", ".flac", ".mp3"})
    if not files:
        raise FileNotFoundError(f"{audio_dir}: no .wav, .flac or .mp3 files")
    pieces, total = [], 0
    for path in files:
        pieces.append(librosa.load(path, sr=16000)[0])
        total += len(pieces[-1])
        if total >= 16000 * WINDOW_S:
            break
    return np.concatenate(pieces)[:16000 * WINDOW_S]


def run_model(audio_dir: Path, repeats: int) -> None:
    """One measuring process: prints its wall and CPU seconds for ``repeats`` encode + decode passes."""
    import ctranslate2
    import numpy as np
    import whisper

    from extractors.assets import resolve_whisper_ct2
    from extractors.whisper_ct2_model import load_ct2_whisper

    model = load_ct2_whisper(resolve_whisper_ct2("base"), compute_type="float32", threads=1)
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(window(audio_dir))).numpy()[None]
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))
    model.generate(features, PROMPT, beam_size=1)  # warm
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        model.generate(model.encode(features), PROMPT, beam_size=1, max_length=224)
    print(f"{time.perf_counter() - wall:.3f} {time.process_time() - cpu:.3f}", flush=True)


def measure(audio_dir: Path, repeats: int, at_once: int) -> list[tuple[float, float]]:
    """``at_once`` measuring processes started together; each one's (wall, CPU) seconds."""
    command = [sys.executable, __file__, str(audio_dir), "--repeats", str(repeats), "--worker"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(at_once)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a measuring process exited with {proc.returncode}")
        wall, cpu = map(float, out.split()[-2:])
        results.append((wall, cpu))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("audio_dir", type=Path)
    p.add_argument("--pairs", type=int, default=3, help="alone / two-at-once rounds")
    p.add_argument("--repeats", type=int, default=8, help="encode + decode passes per process")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        run_model(args.audio_dir, args.repeats)
        return 0
    alone, together = [], []
    for _ in range(args.pairs):
        alone += measure(args.audio_dir, args.repeats, 1)
        together += measure(args.audio_dir, args.repeats, 2)
        print(f"alone {alone[-1][0]:.2f} s; two at once {together[-2][0]:.2f} s and {together[-1][0]:.2f} s",
              flush=True)
    a_wall, t_wall = statistics.mean(w for w, _ in alone), statistics.mean(w for w, _ in together)
    a_cpu, t_cpu = statistics.mean(c for _, c in alone), statistics.mean(c for _, c in together)
    print(f"mean wall: alone {a_wall:.2f} s, two at once {t_wall:.2f} s each ({t_wall / a_wall:.3f}x); "
          f"mean CPU: {a_cpu:.2f} s against {t_cpu:.2f} s ({t_cpu / a_cpu:.3f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
