"""One MCR training step on CPU at RAVDESS shapes (batch 64; 12 words, no face, 375 acoustic frames at 100 Hz;
GloVe-50 / 21 visual / 43 librosa features; eight classes; the default ``mosi`` preset's model): float32 against
bfloat16 autocast, the 100 Hz acoustic stream against its 25 Hz pooling (``pool_a=4``, ``stream_rate=25``), with
1 and 2 torch threads. The variants take turns, step by step, so that load from other processes hits all alike;
the best (least disturbed) step of each and its CPU time are reported.

    python benchmarks/cpu_training.py                # prints a table
    python benchmarks/cpu_training.py --write        # also writes its section of docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.report import machine, write_section  # noqa: E402
from model import PRESETS, build_model  # noqa: E402
from workflows.cpus import free_cores  # noqa: E402

VARIANTS = {"float32, 100 Hz": (1, None), "bfloat16 autocast, 100 Hz": (1, torch.bfloat16),
            "float32, 25 Hz (pool_a=4)": (4, None)}


def _inputs(cfg, batch: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    lengths = {"l": 12, "v": 1, "a": 375}
    x = {f"x_{m}": torch.randn(batch, t, cfg.input_dim(m), generator=g) for m, t in lengths.items()}
    for m, t in lengths.items():  # ragged: every sample keeps between 3/4 and all of its steps
        keep = torch.randint(max(1, 3 * t // 4), t + 1, (batch, 1), generator=g)
        x[f"mask_{m}"] = torch.arange(t)[None] < keep
    x["mask_v"][:] = False  # audio-only clips: no face
    return x


def measure(threads: int, *, batch: int, steps: int) -> dict[str, tuple[float, float]]:
    """{variant: (best wall seconds, its CPU seconds)} of a forward + cross-entropy + backward + Adam step."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    base = PRESETS["mosi"].model.replace(d_l=50, d_v=21, d_a=43, task="classification", n_classes=8)
    runs = {}
    for name, (pool, _) in VARIANTS.items():
        torch.manual_seed(0)
        model = build_model(base.replace(pool_a=pool))
        runs[name] = (model, torch.optim.Adam(model.parameters()), _inputs(base, batch, g))
    labels = torch.randint(0, 8, (batch,), generator=g)
    best = {name: (float("inf"), 0.0) for name in VARIANTS}
    for i in range(steps + 1):
        for name, (model, opt, inputs) in runs.items():
            dtype = VARIANTS[name][1]
            wall, cpu = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext():
                out = model(**inputs).output
            torch.nn.functional.cross_entropy(out.float(), labels).backward()
            opt.step()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if i and wall < best[name][0]:  # step 0 warms up
                best[name] = (wall, cpu)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="batch size (the default preset's: 64)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant and thread count")
    parser.add_argument("--write", action="store_true", help="also write the results into docs/benchmarks.md")
    args = parser.parse_args(argv)
    free = free_cores()
    load = os.getloadavg()[0]
    rows = []
    for threads in (1, 2):
        for name, (wall, cpu) in measure(threads, batch=args.batch, steps=args.steps).items():
            rows.append((threads, name, wall, cpu))
    base = {t: w for t, n, w, _ in rows if n == "float32, 100 Hz"}
    lines = ["| threads | variant | step (s) | CPU (s) | vs float32 100 Hz |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {t} | {n} | {w:.2f} | {c:.2f} | {w / base[t]:.2f}x |" for t, n, w, c in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section("cpu_training", f"""## Training on CPU (`benchmarks/cpu_training.py`)

{machine()}; batch {args.batch}, best of {args.steps} steps per row; at the start {free} of the cores were free
(load average {load:.1f}: other jobs ran, so compare rows, not absolute times).

{table}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
