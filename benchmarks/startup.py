"""Start-up: `mcr extract` of a 1-s real clip into a fresh store, end to end, with a warm model cache (issue 20).

The clip is cut from a CREMA-D clip (`../shared/data/cremad`; `--media` for another file) with PyAV. Each run is a
fresh process, as a user runs it: interpreter, imports, cluster, model loads, extraction, store. Wall time and CPU
time (user + system, of the process and its children) per run, median of `--runs`; the machine's load average is
printed beside each run, since other work on the machine slows start-up most.

With `--baseline REV` the same runs are made, alternating, with the code of a git revision (`git archive REV`,
unpacked into a temporary folder) or of a folder, in the same Python environment: the ratio of the two is measured
in one run. `--tree FOLDER` times another copy of the code instead of this one.
Each tree's stores are then compared stream by stream (Arrow tables and schema metadata): `bit-equal` or not.

  python benchmarks/startup.py --baseline 3e13b78 --runs 3 --write
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CREMAD = ROOT.parent / "shared" / "data" / "cremad" / "1001_DFA_ANG_XX.flv"


def cut_clip(source: Path, out: Path, *, start: float = 0.5, seconds: float = 1.0) -> Path:
    """``seconds`` of ``source`` from ``start`` as an MP4 (H.264 + AAC), re-encoded with ffmpeg."""
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i", str(source),
                    "-c:v", "libx264", "-c:a", "aac", str(out)], check=True)
    return out


def checkout(revision: str, into: Path) -> Path:
    """The tracked files of ``revision`` unpacked into ``into`` (nothing in the repository changes)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_once(tree: Path, clip_dir: Path, store: Path) -> dict[str, float]:
    """One `mcr extract` of ``clip_dir`` into a new ``store`` with the code of ``tree``: wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "workflows.cli", "extract", str(clip_dir), "--store", str(store),
                           "--no-progress"], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: mcr extract failed:\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "load": load}


def same_streams(a: Path, b: Path) -> bool:
    """Whether two stores hold the same stream files: equal Arrow tables and schema metadata."""
    import pyarrow.parquet as pq

    files = sorted(p.relative_to(a) for p in a.rglob("part.parquet"))
    if files != sorted(p.relative_to(b) for p in b.rglob("part.parquet")):
        return False
    for name in files:
        ta, tb = pq.read_table(a / name), pq.read_table(b / name)
        if not (ta.equals(tb) and ta.schema.metadata == tb.schema.metadata):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=CREMAD, help="the file a 1-s clip is cut from")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="also time the code of this git revision (or folder), "
                        "alternating")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the code to time (default: this repository)")
    parser.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    args = parser.parse_args()
    if not args.media.is_file():
        sys.exit(f"{args.media}: no such file (pass --media)")
    with tempfile.TemporaryDirectory(prefix="mcr-startup-") as tmp:
        tmp = Path(tmp)
        clip_dir = cut_clip(args.media, tmp / "clip" / "clip.mp4").parent
        trees = {"this repository" if args.tree == ROOT else str(args.tree): args.tree}
        if args.baseline:
            folder = Path(args.baseline)
            trees[f"baseline {args.baseline}"] = folder if folder.is_dir() else checkout(args.baseline,
                                                                                          tmp / "baseline")
        stores = {name: [tmp / f"store-{i}-{k}" for i in range(args.runs)] for k, name in enumerate(trees)}
        times: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for k, (name, tree) in enumerate(trees.items()):  # warm: model cache, numba's caches, the page cache
            run_once(tree, clip_dir, tmp / f"warm-{k}")
        for i in range(args.runs):
            for name, tree in trees.items():
                times[name].append(run_once(tree, clip_dir, stores[name][i]))
                t = times[name][-1]
                print(f"{name:24s} run {i + 1}: {t['wall']:5.1f} s wall, {t['cpu']:5.1f} s CPU "
                      f"(load average {t['load']:.1f})", flush=True)
        first = [runs[0] for runs in stores.values()]
        equal = same_streams(*first) if args.baseline else None
    report = markdown(times, args, equal)
    print(report)
    if args.write:
        from benchmarks.report import write_section

        write_section("startup", report)


def markdown(times: dict[str, list[dict[str, float]]], args: argparse.Namespace, equal: bool | None) -> str:
    from benchmarks.report import machine

    median = {name: {k: statistics.median(t[k] for t in runs) for k in ("wall", "cpu", "load")}
              for name, runs in times.items()}
    lines = ["## Start-up: a 1-s clip end to end (`benchmarks/startup.py`)", "",
             f"Machine: {machine()}. `mcr extract` of a 1-s clip cut from `{args.media.name}` into a fresh store, "
             f"a new process each run, warm model cache; median of {args.runs} runs, trees alternating.", "",
             "| code | wall (s) | CPU (s) | load average |", "| --- | --- | --- | --- |"]
    for name, m in median.items():
        lines.append(f"| {name} | {m['wall']:.1f} | {m['cpu']:.1f} | {m['load']:.1f} |")
    if args.baseline:
        this, base = median.values()
        lines += ["", f"{next(iter(median))} / baseline: {this['wall'] / base['wall']:.2f}x the wall time, "
                      f"{this['cpu'] / base['cpu']:.2f}x the CPU time; streams "
                      f"{'bit-equal' if equal else 'DIFFERENT'} (Arrow tables and schema metadata)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
