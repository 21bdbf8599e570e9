"""Extract a corpus on a SLURM cluster: dask-jobqueue submits the Dask workers as batch jobs.

Run it on the login node, in the same environment as the workers (`pip install -e .` of the same revision on a
shared filesystem, plus `pip install dask-jobqueue`). Every job is one machine of 32 cores: 32 single-threaded
worker processes (one model set each, ~1.5-2 GiB), for a 30-s chunk or a short video at a time.

  python docs/examples/slurm_extract.py /shared/corpus.csv /shared/mcr-store --jobs 40
  python docs/examples/slurm_extract.py /shared/corpus.csv /shared/mcr-store --print-job-script   # no submission
"""
from __future__ import annotations

import argparse


def cluster(jobs_cores: int = 32, memory: str = "96GiB", walltime: str = "04:00:00", queue: str | None = None):
    from dask_jobqueue import SLURMCluster

    return SLURMCluster(
        cores=jobs_cores, processes=jobs_cores,  # one thread per worker process: the extractors are native code
        memory=memory, walltime=walltime, queue=queue,
        job_extra_directives=["--exclusive"],
        worker_extra_args=["--lifetime", "3h50m", "--lifetime-stagger", "5m"],  # leave before the walltime kills
        job_script_prologue=["source /shared/mcr-emotion/.venv/bin/activate"],
        log_directory="/shared/mcr-logs",
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("store")
    p.add_argument("--jobs", type=int, default=10, help="machines (batch jobs) to run")
    p.add_argument("--print-job-script", action="store_true", help="print the sbatch script and stop")
    args = p.parse_args()

    slurm = cluster()
    if args.print_job_script:
        print(slurm.job_script())
        return 0
    from distributed import Client

    from pipeline.corpus import load_corpus
    from workflows.extract import extract_corpus

    slurm.scale(jobs=args.jobs)  # or slurm.adapt(minimum_jobs=1, maximum_jobs=args.jobs)
    with Client(slurm) as client:
        print("Dask dashboard:", client.dashboard_link)
        summary = extract_corpus(load_corpus(args.corpus), args.store, client=client)
    print(f"{summary.done} extracted, {summary.skipped} up to date, {summary.failed} failed; "
          f"{summary.throughput:.1f}x real time on {summary.workers} workers")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
