"""Training-step time and inference throughput of MCR and of the MulT baseline, in one run, at unaligned CMU-MOSI
shapes (batch 64; L/V/A lengths 50/500/375; input sizes 300/35/74; Table 1's MOSI preset for both models).

    python benchmarks/model_speed.py --write             # CPU, also writes its section of docs/benchmarks.md
    python benchmarks/model_speed.py --quick --json      # one JSON object on stdout, nothing written
    python benchmarks/model_speed.py --device cuda --amp bf16

The two models are timed alternately, step by step, so that load from other processes hits both alike. On a
shared machine the wall time of a step varies by 2x, so ``ratio`` = MCR / MulT uses the best (least disturbed)
step of each (target: <= 1.5); ``ratio_median`` and ``ratio_cpu_time`` (process CPU seconds) are reported beside it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.report import machine, write_section  # noqa: E402
from model import PRESETS, build_model, count_parameters  # noqa: E402

TARGET_RATIO = 1.5


def make_inputs(cfg, batch: int, lengths: dict[str, int], device: str, *, ragged: bool, seed: int = 0
                ) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {f"x_{m}": torch.randn(batch, T, cfg.input_dim(m), generator=g).to(device) for m, T in lengths.items()}
    if ragged:  # real batches are padded: every sample keeps between half and all of its steps
        for m, T in lengths.items():
            keep = torch.randint(T // 2, T + 1, (batch, 1), generator=g)
            out[f"mask_{m}"] = (torch.arange(T)[None, :] < keep).to(device)
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _autocast(device: str, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[amp])


def measure(names: list[str], *, batch: int, lengths: dict[str, int], device: str, amp: str, steps: int,
            warmup: int, ragged: bool) -> dict[str, dict[str, float]]:
    """Alternate one training step (forward, L1 loss, backward, Adam) of each model; then inference passes."""
    models, opts, inputs = {}, {}, {}
    for name in names:
        cfg = PRESETS["mosi"].model.replace(arch=name)
        torch.manual_seed(0)
        models[name] = build_model(cfg).to(device)
        opts[name] = torch.optim.Adam(models[name].parameters(), lr=1e-3)
        inputs[name] = make_inputs(cfg, batch, lengths, device, ragged=ragged)
    target = torch.randn(batch, 1, device=device)
    train_wall: dict[str, list[float]] = {n: [] for n in names}
    train_cpu: dict[str, list[float]] = {n: [] for n in names}
    infer_wall: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + steps):
        for name in names:
            model, opt = models[name].train(), opts[name]
            _sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            with _autocast(device, amp):
                out = model(**inputs[name]).output
            loss = (out.float() - target).abs().mean()
            loss.backward()
            opt.step()
            _sync(device)
            if i >= warmup:
                train_wall[name].append(time.perf_counter() - start)
                train_cpu[name].append(time.process_time() - cpu_start)
    for i in range(warmup + steps):
        for name in names:
            model = models[name].eval()
            _sync(device)
            start = time.perf_counter()
            with torch.inference_mode(), _autocast(device, amp):
                model(**inputs[name])
            _sync(device)
            if i >= warmup:
                infer_wall[name].append(time.perf_counter() - start)
    return {name: {"train_step_s": min(train_wall[name]),
                   "train_step_median_s": statistics.median(train_wall[name]),
                   "train_step_all_s": train_wall[name],
                   "train_step_cpu_s": min(train_cpu[name]),
                   "infer_samples_per_s": batch / min(infer_wall[name]),
                   "params": count_parameters(models[name])} for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"], help="autocast dtype")
    parser.add_argument("--batch", type=int, default=64, help="batch size (MOSI's Table 1 value: 64)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model before timing")
    parser.add_argument("--lengths", default="50,500,375", help="L,V,A sequence lengths (unaligned MOSI's)")
    parser.add_argument("--ragged", action="store_true", help="pad each sample to the batch length and mask it")
    parser.add_argument("--quick", action="store_true", help="2 timed steps after 1 warm-up (same shapes)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--write", action="store_true",
                        help="also write the results into docs/benchmarks.md (without it they are only printed)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, warmup = (2, 1) if args.quick else (args.steps, args.warmup)
    lengths = dict(zip(("l", "v", "a"), (int(n) for n in args.lengths.split(","))))
    assert len(lengths) == 3, f"--lengths needs three numbers L,V,A; got {args.lengths!r}"
    res = measure(["mcr", "mult"], batch=args.batch, lengths=lengths, device=args.device, amp=args.amp,
                  steps=steps, warmup=warmup, ragged=args.ragged)
    mcr, mult = res["mcr"], res["mult"]
    summary = {
        "mcr_train_step_s": round(mcr["train_step_s"], 4), "mult_train_step_s": round(mult["train_step_s"], 4),
        "ratio": round(mcr["train_step_s"] / mult["train_step_s"], 3), "target_ratio": TARGET_RATIO,
        "ratio_median": round(mcr["train_step_median_s"] / mult["train_step_median_s"], 3),
        "ratio_cpu_time": round(mcr["train_step_cpu_s"] / mult["train_step_cpu_s"], 3),
        "mcr_train_step_median_s": round(mcr["train_step_median_s"], 4),
        "mult_train_step_median_s": round(mult["train_step_median_s"], 4),
        "mcr_infer_samples_per_s": round(mcr["infer_samples_per_s"], 1),
        "mult_infer_samples_per_s": round(mult["infer_samples_per_s"], 1),
        "mcr_params": mcr["params"], "mult_params": mult["params"],
        "batch": args.batch, "lengths": lengths, "device": args.device, "amp": args.amp, "ragged": args.ragged,
        "steps": steps, "torch_threads": torch.get_num_threads(), "machine": machine(),
        "mcr_train_steps_s": [round(t, 4) for t in mcr["train_step_all_s"]],
        "mult_train_steps_s": [round(t, 4) for t in mult["train_step_all_s"]],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
    if args.write:
        device = f"{args.device}" + (f", autocast {args.amp}" if args.amp != "none" else "")
        write_section("model_speed", "\n".join([
            "## Model speed: MCR vs MulT (benchmarks/model_speed.py)",
            "",
            f"Machine: {machine()}; device {device}; {summary['torch_threads']} torch threads.",
            f"Shapes: batch {args.batch}, L/V/A lengths {lengths['l']}/{lengths['v']}/{lengths['a']} "
            f"(unaligned MOSI: 50/500/375), input sizes 300/35/74, "
            f"MOSI preset (d = 40, 10 heads; MCR 3 layers, MulT 5 crossmodal + 3 memory layers)"
            f"{', ragged masks' if args.ragged else ''}; best of {steps} steps after {warmup} warm-up "
            f"(median in brackets), models timed alternately; a training step is forward, L1 loss, backward "
            f"and Adam.",
            "",
            "| model | parameters | training step (s) | inference (samples/s) |",
            "|---|---:|---:|---:|",
            f"| MCR | {mcr['params']:,} | {mcr['train_step_s']:.3f} ({mcr['train_step_median_s']:.3f}) | "
            f"{mcr['infer_samples_per_s']:.1f} |",
            f"| MulT | {mult['params']:,} | {mult['train_step_s']:.3f} ({mult['train_step_median_s']:.3f}) | "
            f"{mult['infer_samples_per_s']:.1f} |",
            "",
            f"MCR / MulT training-step time: **{summary['ratio']:.2f}x** (target <= {TARGET_RATIO}x); "
            f"{summary['ratio_median']:.2f}x on medians, {summary['ratio_cpu_time']:.2f}x on process CPU time.",
        ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
