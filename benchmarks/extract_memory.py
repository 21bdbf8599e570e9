"""Peak memory of `mcr extract --workers 2` (the whole process tree) against the length of 720p footage.

Footage: the six CREMA-D clips joined, 1 s of silence after each, and scaled to 1280x720 once (libx264 ultrafast,
AAC), then looped with
``ffmpeg -stream_loop`` (no re-encoding) to each length. Each length is extracted into an empty store by
``mcr extract FILE.mp4 --store ... --workers 2`` (all three modalities, default chunking) in a subprocess whose
process tree (the command, its LocalCluster's nannies and workers) is sampled with psutil every 0.2 s; the peak of
the summed RSS counts. The baseline, measured in the same run: how decoding worked before chunks, the whole video
decoded into memory (``extractors.media.decode(path)``, frames kept), alone in a process, at the shortest lengths.

  python benchmarks/extract_memory.py --minutes 1,5,15 --write
  python benchmarks/extract_memory.py --minutes 1,5,15,60 --baseline-minutes 1,5
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CREMAD = ROOT / ".." / "shared" / "data" / "cremad"
PLOT = ROOT / "docs" / "extract_memory.png"


def make_base(folder: Path, pause: float = 1.0) -> Path:
    """The six clips joined (concat filter), each followed by ``pause`` s of silence (its last frame held),
    scaled to 1280x720 at 30 fps: about 19 s of 720p footage of someone speaking."""
    clips = sorted(CREMAD.resolve().glob("*.flv"))
    assert clips, f"no CREMA-D clips in {CREMAD}"
    base = folder / "base.mp4"
    inputs = [arg for c in clips for arg in ("-i", str(c))]
    pads = "".join(f"[{i}:v:0]fps=30,tpad=stop_mode=clone:stop_duration={pause}[v{i}];"
                   f"[{i}:a:0]aresample=44100,apad=pad_dur={pause}[a{i}];" for i in range(len(clips)))
    streams = "".join(f"[v{i}][a{i}]" for i in range(len(clips)))
    graph = f"{pads}{streams}concat=n={len(clips)}:v=1:a=1[v][a];[v]scale=1280:720[vs]"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[vs]", "-map", "[a]",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", "60", "-c:a", "aac", "-b:a", "96k",
                    str(base)], check=True)
    return base


def loop_to(base: Path, minutes: float, out: Path) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(base), "-t", str(minutes * 60),
                    "-c", "copy", str(out)], check=True)
    return out


def peak_tree_rss(args: list[str], interval: float = 0.2) -> tuple[float, float, int]:
    """Run ``args``; (peak summed RSS of it and its descendants in bytes, wall seconds, exit code)."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0.0
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(interval)
    reader.join(timeout=5)
    if proc.returncode:
        print("".join(output[-30:]), file=sys.stderr)
    return peak, time.perf_counter() - started, proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", default="1,5,15,60", help="footage lengths, minutes (the first is the reference)")
    p.add_argument("--baseline-minutes", default="1,5", help="lengths decoded whole, as before chunks")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--base", type=Path, help="footage to loop instead of the CREMA-D clips at 720p (e.g. the dense "
                                             "speech of benchmarks/media.py); --describe says what it is")
    p.add_argument("--describe", default="", help="what --base is, for the section's text")
    p.add_argument("--write", action="store_true", help="also write the section of docs/benchmarks.md and the plot")
    args = p.parse_args(argv)

    from benchmarks.report import machine, write_section

    minutes = [float(m) for m in args.minutes.split(",") if m]
    baseline_minutes = [float(m) for m in args.baseline_minutes.split(",") if m]
    rows, baseline = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = args.base or make_base(tmp)
        for m in sorted(set(minutes) | set(baseline_minutes)):  # one folder per length: `mcr extract FOLDER`
            (tmp / f"footage_{m:g}min").mkdir()
            loop_to(base, m, tmp / f"footage_{m:g}min" / "footage.mp4")
        for m in baseline_minutes:
            footage = str(tmp / f"footage_{m:g}min" / "footage.mp4")
            code = f"from extractors.media import decode; m = decode({footage!r}); print(m.frames.nbytes)"
            peak, wall, rc = peak_tree_rss([sys.executable, "-c", code])
            baseline.append((m, peak, wall, rc))
            print(f"baseline whole decode, {m:g} min: peak {peak / 2**30:.2f} GiB in {wall:.0f} s (rc {rc})",
                  flush=True)
        for m in minutes:
            store = tmp / f"store_{m:g}"
            peak, wall, rc = peak_tree_rss([sys.executable, "-m", "workflows.cli", "extract",
                                            str(tmp / f"footage_{m:g}min"), "--store", str(store),
                                            "--workers", str(args.workers), "--no-progress"])
            covered = _coverage(store) if rc == 0 else {}
            rows.append((m, peak, wall, rc, covered))
            print(f"mcr extract --workers {args.workers}, {m:g} min: peak {peak / 2**30:.2f} GiB in {wall:.0f} s "
                  f"(rc {rc}) {covered}", flush=True)

    ref = rows[0][1]
    lines = [
        "## Peak memory against footage length (`benchmarks/extract_memory.py`)", "",
        f"Machine: {machine()}. Footage: "
        + (f"{args.describe}, looped to each length" if args.base else "the six CREMA-D clips joined with 1 s of "
           "silence after each, scaled to 1280x720 at 30 fps (libx264 ultrafast, AAC 96 kb/s) and looped to each "
           "length") + ". Peak RSS summed over the whole process tree of "
        f"`mcr extract FOLDER --store DIR --workers {args.workers}` (one video in the folder; the tree: the command, the LocalCluster's "
        "nannies and workers; every default stream, default 30-s chunks), sampled every 0.2 s with psutil; wall time includes "
        "starting the cluster and loading the models. \"Streams cover\": the last row's time of each stream over "
        "the video's duration (for words, the last word's end: the footage may end in a pause or mid-sentence).", "",
        "| footage | peak RSS (GiB) | vs shortest | wall (s) | x real time | streams cover (language / acoustic / visual) |",
        "|---|---:|---:|---:|---:|---|"]
    for m, peak, wall, rc, covered in rows:
        cover = " / ".join(f"{covered.get(k, float('nan')):.3f}" for k in ("language", "acoustic", "visual"))
        lines.append(f"| {m:g} min | {peak / 2**30:.2f} | {peak / ref:.2f}x | {wall:.0f} | {m * 60 / wall:.2f}x | "
                     f"{cover if rc == 0 else f'failed (rc {rc})'} |")
    if baseline:
        lines += ["", "Baseline in the same run, as decoding worked before chunks: the whole video decoded into "
                      "memory in one process (`decode(path)`, frames kept; no extractor, no cluster):", "",
                  "| footage | peak RSS (GiB) | wall (s) |", "|---|---:|---:|"]
        lines += [f"| {m:g} min | {peak / 2**30:.2f} | {wall:.0f} |" for m, peak, wall, rc in baseline]
    missing = [m for m in (1, 5, 15, 60) if m not in minutes]
    if missing:
        lines += ["", f"Not run here: {', '.join(f'{m:g} min' for m in missing)} (time on the shared 2-core "
                      "machine)."]
    lines += ["", "![peak RSS against footage length](extract_memory.png)"]
    report = "\n".join(lines)
    print(report)
    if args.write:
        _plot(rows, baseline)
        write_section("extract_memory", report)
    return 0


def _coverage(store: Path) -> dict[str, float]:
    """Per stream, the last row's time over the video's duration (how much of the video the stream covers)."""
    from pipeline.store import FeatureStore

    s = FeatureStore(store)
    video = s.videos().iloc[0]
    out = {}
    for m, column in (("language", "end"), ("acoustic", "time"), ("visual", "time")):
        table = s.read_stream(m)
        out[m] = (max(table.column(column).to_pylist()) / video["duration"]) if table.num_rows else 0.0
    return out


def _plot(rows, baseline) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r[0] for r in rows], [r[1] / 2**30 for r in rows], "o-", label="mcr extract --workers 2 (chunks)")
    if baseline:
        ax.plot([b[0] for b in baseline], [b[1] / 2**30 for b in baseline], "s--", label="whole decode (before)")
    ax.set_xlabel("720p footage (minutes)")
    ax.set_ylabel("peak RSS of the process tree (GiB)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
