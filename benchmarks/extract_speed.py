"""End-to-end extraction speed on honest media, start-up included, against the obvious way in the same run.

Media (:mod:`benchmarks.media`), all with every default stream:

* **dense speech**: real sentences of many speakers back to back, no pauses (CREMA-D talking faces, RAVDESS and TESS
  speech over face photographs), 640x360 at 25 fps, H.264 + 48-kHz stereo AAC, as a user's footage;
* **repeated sentence**: the six CREMA-D clips joined again and again without pauses (whisper's repetition check
  trips there);
* **paused**: the six CREMA-D clips joined with 1.5-s pauses, 320x240 at 15 fps (the footage of earlier rows);
* **short clips**: a corpus of TESS clips ("say the word ...", 1.3-2.6 s each, audio only, 24.4 kHz).

Rows for each medium:

* ``mcr extract --workers 2`` and ``--workers 1``: a fresh process into an empty store, everything included (imports,
  cluster, model loads, the summary); CPU: the whole process tree;
* steady state: the same extraction on a LocalCluster whose workers loaded their models before timing;
* ``mcr extract --workers 2`` with the stream settings of before issue 20 (:data:`BEFORE`: openai-whisper with its
  five fallback decodes, an 8-s short window that falls back in itself, the librosa acoustic stream): the words
  (WER) and speed to keep;
* the obvious way, in a fresh process: openai-whisper ``transcribe(word_timestamps=True)`` on the whole audio,
  librosa MFCC + ``pyin``, MediaPipe on every frame, one file after another; end to end, and its steady state (the
  time after its models loaded).

Speed: seconds of media per second of wall time ("x real time"). WER: against what the recordings say (their file
names tell). ``--timeline`` prints where the time of one extraction goes, task by task, for 1 and 2 workers.

Data (keep it outside the repository, e.g. in the git-ignored ``data/``): RAVDESS speech audio (the release's
``Actor_XX`` folders; a copy is in the public GitHub repository ``syildizn/RavdessSounds``) and TESS (the release on
Scholars Portal Dataverse, doi:10.5683/SP2/E8H2MF; a copy of its 2,800 wavs is in the public GitHub repository
``deepxzy/Toronto-emotional-speech-set``, folder ``datasets/``); the CREMA-D clips of ``../shared``.

  python benchmarks/extract_speed.py --ravdess RAVDESS_DIR --tess TESS_DIR --write
  python benchmarks/extract_speed.py --ravdess RAVDESS_DIR --tess TESS_DIR --timeline
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.extract_corpus import close, cpu_seconds, warm_up  # noqa: E402

SENTENCE = "don't forget a jacket"
BEFORE = ("--acoustic", "librosa", "--set", "language.engine=openai-whisper", "--set", "language.fallback=5",
          "--set", "language.short_window_seconds=8", "--set", "language.retry_window_seconds=null")
CREMAD = (ROOT / ".." / "shared" / "data" / "cremad").resolve()


def words_of(text: list[str]) -> str:
    return " ".join(w for w in (re.sub(r"[^\w']", "", t.lower()) for t in text) if w)


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---- the obvious way, in a process of its own ----------------------------------------------------------------

def obvious_way(paths: list[str]) -> dict:
    """Models loaded, then each file: decode every frame, transcribe, MFCC + pyin, MediaPipe on every frame."""
    started = time.perf_counter()
    import librosa
    import whisper  # noqa: F401

    from extractors import create
    from extractors.media import decode

    model = create("whisper-glove", engine="openai-whisper").model  # the same weights as the pipeline's
    visual = create("mediapipe", fps=None)
    visual.load()
    loaded = time.perf_counter()
    words = {}
    for path in paths:
        media = decode(path, fps=None, warn=False)
        if media.has_audio:
            result = model.transcribe(media.audio, language="en", word_timestamps=True, fp16=False)
            words[path] = words_of([w["word"] for s in result["segments"] for w in s["words"]])
            librosa.feature.mfcc(y=media.audio, sr=16000, n_mfcc=25, hop_length=160, n_fft=512)
            librosa.pyin(media.audio, fmin=60, fmax=500, sr=16000, frame_length=1024, hop_length=160)
        if media.has_video:
            visual.analyse(media.frames, media.frame_times, path)
    return {"load": loaded - started, "run": time.perf_counter() - loaded, "words": words}


def run_obvious_way(paths: list[str]) -> tuple[float, float, float, dict]:
    """A fresh process doing :func:`obvious_way`: (wall, CPU, steady-state wall, words by path)."""
    cpu, started = children_cpu(), time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--obvious", *paths], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return wall, children_cpu() - cpu, result["run"], result["words"]


# ---- the pipeline ---------------------------------------------------------------------------------------------

def mcr_extract(folder: Path, workers: int, options: list[str] | tuple[str, ...] = ()) -> tuple[float, float, dict]:
    """``mcr extract FOLDER --workers N [OPTIONS]`` into an empty store, a fresh process: wall, CPU (the process
    tree), words by file path."""
    from pipeline.store import FeatureStore

    mcr = Path(sys.executable).with_name("mcr")
    with tempfile.TemporaryDirectory() as tmp:
        cpu, started = children_cpu(), time.perf_counter()
        subprocess.run([str(mcr), "extract", str(folder), "--store", f"{tmp}/store", "--workers", str(workers),
                        "--no-progress", *options], check=True, capture_output=True)
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu
        return wall, cpu, store_words(FeatureStore(f"{tmp}/store"))


def store_words(store) -> dict:
    """The words of every video of ``store``, by the path it was extracted from."""
    import pyarrow.parquet as pq

    rows = pq.read_table(Path(store.root) / "videos.parquet", columns=["video_id", "path"]).to_pylist()
    return {r["path"]: words_of(store.read_stream("language", [r["video_id"]]).column("word").to_pylist())
            for r in rows}


class Pipeline:
    """A LocalCluster as ``mcr extract``'s whose workers loaded their models, for steady-state rounds."""

    def __init__(self, n_workers: int, warm_path: str):
        from workflows.cluster import local_client
        from workflows.extract import DEFAULT_CHUNKING, ExtractorSpec, build_extractors, default_decode_options

        self.extractors = build_extractors()
        specs = tuple(ExtractorSpec.of(e, DEFAULT_CHUNKING) for e in self.extractors)
        self.client = local_client(n_workers, processes=True)
        self.client.wait_for_workers(n_workers)
        self.client.run(warm_up, specs, warm_path, default_decode_options(self.extractors))

    def run(self, sources, *, task_stream: bool = False) -> tuple[float, float, dict, list]:
        """Wall and CPU seconds (workers and this process) of one extraction into an empty store, the words by
        path, and (``task_stream``) Dask's record of its tasks."""
        from distributed import get_task_stream

        from pipeline.store import FeatureStore
        from workflows.extract import extract_corpus

        with tempfile.TemporaryDirectory() as tmp:
            cpu = sum(self.client.run(cpu_seconds).values()) + cpu_seconds()
            started = time.perf_counter()
            with get_task_stream(self.client) as stream:
                summary = extract_corpus(sources, tmp, client=self.client, extractors=self.extractors,
                                         progress=False)
            wall = time.perf_counter() - started
            cpu = sum(self.client.run(cpu_seconds).values()) + cpu_seconds() - cpu
            assert summary.failed == 0, summary.failures
            return wall, cpu, store_words(FeatureStore(tmp)), (stream.data if task_stream else [])

    def close(self) -> None:
        close(self.client)


def timeline(tasks: list, started_at: float | None = None) -> list[str]:
    """Dask's task stream as lines: each task's kind, worker, start and end (s from the first start)."""
    if not tasks:
        return []
    t0 = started_at or min(s["start"] for t in tasks for s in t["startstops"] if s["action"] == "compute")
    lines = []
    for t in sorted(tasks, key=lambda t: t["startstops"][0]["start"]):
        for s in t["startstops"]:
            if s["action"] == "compute":
                kind = re.sub(r"-[0-9a-f]{32}$", "", str(t["key"][0] if isinstance(t["key"], tuple) else t["key"]))
                lines.append(f"{kind[:40]:40s} {t['worker'][-6:]:>6s} {s['start'] - t0:7.2f} {s['stop'] - t0:7.2f}")
    return lines


# ---- the benchmark ---------------------------------------------------------------------------------------------

def build_media(tmp: Path, args) -> dict:
    """{name: (folder holding the medium's files, media seconds, reference words by path, description)}."""
    from benchmarks.media import dense_speech, face_stills, reference_words, repeated_footage, utterance_of
    from extractors.media import probe
    from tests.workflows.joined_video import join_clips

    clips = sorted(CREMAD.glob("*.flv"))
    assert clips, f"the CREMA-D clips are needed ({CREMAD})"
    media = {}
    folder = tmp / "dense"
    folder.mkdir()
    seconds, said = dense_speech(folder / "dense.mp4", [CREMAD, args.ravdess, args.tess], face_stills(),
                                 seconds=args.seconds)
    media["dense speech"] = (folder, seconds, {str(folder / "dense.mp4"): reference_words(said)},
                             f"{len(said)} sentences of {len({u.speaker for u in said})} speakers")
    folder = tmp / "repeated"
    folder.mkdir()
    count = repeated_footage(clips, folder / "repeated.mp4", seconds=args.seconds)
    media["repeated sentence"] = (folder, probe(str(folder / "repeated.mp4"))[0],
                                  {str(folder / "repeated.mp4"): " ".join([SENTENCE] * count)}, f"{count} sentences")
    folder = tmp / "paused"
    folder.mkdir()
    spans: list = []
    seconds = join_clips(clips, folder / "paused.mp4", seconds=args.seconds, spans=spans)
    media["paused"] = (folder, seconds, {str(folder / "paused.mp4"): " ".join([SENTENCE] * len(spans))},
                       f"{len(spans)} sentences")
    folder = tmp / "short"
    folder.mkdir()
    tess = sorted(p for p in args.tess.rglob("*.wav"))[:: max(1, len(list(args.tess.rglob("*.wav"))) // args.clips)]
    truth = {}
    for path in tess[: args.clips]:
        (folder / path.name).symlink_to(path)
        truth[str(folder / path.name)] = utterance_of(path).text
    media["short clips"] = (folder, sum(probe(p)[0] for p in truth), truth, f"{len(truth)} TESS clips")
    return media


def wer(truth: dict, words: dict) -> float:
    import jiwer

    keys = sorted(truth)
    resolved = {str(Path(k).resolve()): v for k, v in words.items()}
    hyps = [words.get(k, resolved.get(str(Path(k).resolve()), "")) for k in keys]
    return float(jiwer.wer([truth[k] for k in keys], hyps))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ravdess", type=Path, help="RAVDESS speech (Actor_XX folders): speakers of the dense speech")
    p.add_argument("--tess", type=Path, help="TESS (folders of OAF_/YAF_ wavs): speakers and the short clips")
    p.add_argument("--seconds", type=float, default=180.0, help="length of each footage")
    p.add_argument("--clips", type=int, default=200, help="short clips in the corpus")
    p.add_argument("--only", help="comma list of media to measure (default: all)")
    p.add_argument("--timeline", action="store_true", help="print the task timeline of the dense speech instead")
    p.add_argument("--write", action="store_true", help="also write the section of docs/benchmarks.md")
    p.add_argument("--obvious", nargs="+", help=argparse.SUPPRESS)  # the obvious way's own process
    args = p.parse_args(argv)
    if args.obvious:
        print(json.dumps(obvious_way(args.obvious)))
        return 0
    if not (args.ravdess and args.tess):
        p.error("--ravdess and --tess are needed (public corpora: see the module doc)")
    from benchmarks.report import machine, write_section
    from pipeline.manifest import VideoSource

    tmp = Path(tempfile.mkdtemp())
    media = build_media(tmp, args)
    if args.only:
        media = {k: v for k, v in media.items() if k in args.only.split(",")}
    rows = []
    for name, (folder, seconds, truth, what) in media.items():
        sources = [VideoSource(Path(f).stem, f) for f in sorted(truth)]
        if args.timeline:
            for n in (2, 1):
                pipeline = Pipeline(n, str(sorted(CREMAD.glob("*.flv"))[0]))
                wall, cpu, _, tasks = pipeline.run(sources, task_stream=True)
                pipeline.close()
                print(f"{name}, {n} worker(s), models loaded: {wall:.1f} s wall, {cpu:.1f} CPU s")
                print("\n".join(timeline(tasks)))
            continue
        row = {"medium": name, "what": what, "seconds": seconds, "load": os.getloadavg()[0]}
        for n in (2, 1):
            row[f"e2e{n}"] = mcr_extract(folder, n)
            print(name, n, "end to end", row[f"e2e{n}"][:2], flush=True)
        row["before"] = mcr_extract(folder, 2, BEFORE)
        print(name, "before issue 20", row["before"][:2], flush=True)
        for n in (2, 1):
            pipeline = Pipeline(n, str(sorted(CREMAD.glob("*.flv"))[0]))
            row[f"steady{n}"] = pipeline.run(sources)[:3]
            pipeline.close()
            print(name, n, "steady", row[f"steady{n}"][:2], flush=True)
        row["obvious"] = run_obvious_way(sorted(truth))
        print(name, "obvious way", row["obvious"][:3], flush=True)
        row["wer"] = {k: wer(truth, row[k][-1]) for k in ("e2e2", "e2e1", "before", "steady2", "obvious")}
        rows.append(row)
    if args.timeline:
        return 0
    report = render(rows, machine())
    print(report)
    if args.write:
        write_section("extract_speed", report)
    return 0


def render(rows: list[dict], machine: str) -> str:
    lines = ["## End-to-end speed on honest media, against the obvious way (`benchmarks/extract_speed.py`)", "",
             f"Machine: {machine}. Every default stream. \"end to end\": `mcr extract FOLDER --workers N` into an "
             "empty store, a fresh process, start-up included (CPU: the whole process tree). \"steady\": the same "
             "extraction on a LocalCluster whose workers had loaded their models. The obvious way: one fresh process, "
             "openai-whisper `transcribe(word_timestamps=True)` on the whole audio, librosa MFCC + pyin, MediaPipe "
             "on every frame; end to end, and steady (after its models loaded). \"before issue 20\": `mcr extract "
             "--workers 2` with the stream settings of then (openai-whisper with 5 fallback decodes, an 8-s short "
             "window that falls back in itself, the librosa acoustic stream). \"load\": the 1-minute load average "
             "before the medium's rows (2 cores). WER against what the recordings say.", "",
             "| medium | media (s) | how | wall (s) | x real time | 2 workers / 1 worker | pipeline / obvious way | "
             "CPU s | WER |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["seconds"]
        e2, e1, s2, s1, ob, bf = r["e2e2"], r["e2e1"], r["steady2"], r["steady1"], r["obvious"], r["before"]
        label = f"{r['medium']} ({r['what']}; load {r['load']:.1f})"
        lines += [
            f"| {label} | {s:.1f} | end to end, 2 workers | {e2[0]:.1f} | **{s / e2[0]:.2f}x** | "
            f"**{e1[0] / e2[0]:.2f}x** | **{ob[0] / e2[0]:.2f}x** | {e2[1]:.1f} | {r['wer']['e2e2']:.3f} |",
            f"| | | end to end, 1 worker | {e1[0]:.1f} | {s / e1[0]:.2f}x | 1.00x | {ob[0] / e1[0]:.2f}x | "
            f"{e1[1]:.1f} | {r['wer']['e2e1']:.3f} |",
            f"| | | end to end, 2 workers, before issue 20's settings | {bf[0]:.1f} | {s / bf[0]:.2f}x | | "
            f"{ob[0] / bf[0]:.2f}x | {bf[1]:.1f} | {r['wer']['before']:.3f} |",
            f"| | | steady, 2 workers | {s2[0]:.1f} | {s / s2[0]:.2f}x | {s1[0] / s2[0]:.2f}x | "
            f"{ob[2] / s2[0]:.2f}x | {s2[1]:.1f} | {r['wer']['steady2']:.3f} |",
            f"| | | steady, 1 worker | {s1[0]:.1f} | {s / s1[0]:.2f}x | 1.00x | {ob[2] / s1[0]:.2f}x | "
            f"{s1[1]:.1f} | |",
            f"| | | the obvious way, end to end (steady) | {ob[0]:.1f} ({ob[2]:.1f}) | {s / ob[0]:.2f}x "
            f"({s / ob[2]:.2f}x) | | 1.00x | {ob[1]:.1f} | {r['wer']['obvious']:.3f} |"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
