"""drain: N no-op jobs drained through a served worker_pull over HTTP (max_jobs 100) by 1 and
by 4 concurrent callers, and through a served cron_tick driving it. Prints jobs/s.

    python bench/drain.py [--jobs 20000]
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from _common import count_done, enqueue_noops, machine, scratch_database, timed
from jobqueue.serving import serve

SECRET = "bench-worker-secret"


def drain_with_callers(url: str, callers: int, max_jobs: int) -> None:
    def caller(_: int) -> None:
        with httpx.Client(headers={"x-job-worker-secret": SECRET}, timeout=120) as http:
            while not http.post(url, json={"max_jobs": max_jobs}).json()["queue_empty"]:
                pass

    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(caller, range(callers)))


def drain_with_cron(url: str) -> None:
    with httpx.Client(headers={"x-cron-secret": SECRET}, timeout=300) as http:
        body = {"iterations": 100, "delay": 0, "max_jobs": 100, "concurrency": 4}
        while http.post(url, json=body).json()["stopped"] != "queue_empty":
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    n = args.jobs
    print(machine())
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as logs:
        env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": dsn}
        with serve("worker_pull", env, Path(logs)) as worker:
            results = {}
            for label, callers in (("worker_pull, 1 caller", 1), ("worker_pull, 4 callers", 4)):
                enqueue_noops(dsn, n)
                drain_with_callers(worker.url, callers, 100)  # warm: learns job durations
                enqueue_noops(dsn, n)
                seconds = timed(lambda c=callers: drain_with_callers(worker.url, c, 100))
                assert count_done(dsn) == n
                results[label] = n / seconds
            cron_env = {
                "CRON_SECRET": SECRET,
                "JOB_WORKER_SECRET": SECRET,
                "WORKER_PULL_URL": worker.url,
            }
            with serve("cron_tick", cron_env, Path(logs)) as cron:
                enqueue_noops(dsn, n)
                seconds = timed(lambda: drain_with_cron(cron.url))
                assert count_done(dsn) == n
                results["cron_tick (concurrency 4, max_jobs 100)"] = n / seconds
    for label, rate in results.items():
        print(f"{label:45s} {rate:10,.0f} jobs/s")
    one, four = results["worker_pull, 1 caller"], results["worker_pull, 4 callers"]
    print(f"{'ratio 4 callers / 1 caller':45s} {four / one:10.2f}")


if __name__ == "__main__":
    main()
