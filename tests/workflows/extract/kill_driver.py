"""Run ``extract_corpus`` (acoustic only) on a folder and SIGKILL this process at one chosen write of the store.

Used by ``test_kills.py``: a Dask client with thread workers (``processes=False``), so the worker's writes
happen in this process and the kill lands exactly where asked. Every write of the store goes through
``pipeline.store.atomic_write``; the wrapper numbers the writes of each kind (``segments``, ``stream``,
``journal`` (a part of the videos journal, one per finished video here), ``videos`` (the compaction at the end)),
logs each one to ``LOG`` (fsynced, so the test knows what was on disk at the kill) and kills

* ``after``: once the N-th write of KIND was renamed onto its target;
* ``before``: once its temporary file is written, before the rename (a hidden ``.tmp`` is left behind).

Usage: python -m tests.workflows.extract.kill_driver CORPUS STORE LOG KIND N after|before [HOP]
Without a kill (N = 0) it prints the run's summary as JSON.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter


def _kind(path: str) -> str:
    path = path.replace("\\", "/")
    name = path.rsplit("/", 1)[-1]
    if "/_journal/" in path:
        return "journal"
    return {"part.parquet": "stream", "videos.parquet": "videos", "segments.parquet": "segments"}.get(name, name)


def main(corpus: str, store: str, log: str, kind: str, n: int, when: str, hop: float | None = None) -> None:
    import distributed

    import pipeline.store
    import workflows.extract.run
    from pipeline.corpus import scan_folder
    from workflows.extract import build_extractors, extract_corpus

    real = pipeline.store.atomic_write
    counts: Counter[str] = Counter()

    def note(line: str) -> None:
        with open(log, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def atomic_write(path, content, *, fs=None):
        k = _kind(str(path))
        counts[k] += 1
        target = (k, counts[k]) == (kind, n)
        if target and when == "before":
            def write_then_die(tmp: str) -> None:
                content(tmp)
                note(f"tmp {k} {counts[k]} {path}")
                die()
            return real(path, write_then_die, fs=fs)
        out = real(path, content, fs=fs)
        note(f"done {k} {counts[k]} {path}")
        if target:
            die()
        return out

    pipeline.store.atomic_write = atomic_write
    workflows.extract.run.JOURNAL_FLUSH_SECONDS = 0  # one journal part per finished video: the kill points are exact
    options = {"acoustic": {"hop": hop}} if hop is not None else None
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        summary = extract_corpus(scan_folder(corpus), store, client=client, progress=False,
                                 extractors=build_extractors({"language": None, "acoustic": "librosa", "visual": None,
                                                              "voice": None}, options))
    print(json.dumps({"done": summary.done, "skipped": summary.skipped, "failed": summary.failed,
                      "computed": summary.computed}))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], args[2], args[3], int(args[4]), args[5], float(args[6]) if len(args) > 6 else None)
