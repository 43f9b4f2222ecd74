"""drain: N no-op jobs drained through a served worker_pull over HTTP (max_jobs 100) by 1 and
by 4 concurrent callers, and through a served cron_tick driving it. Prints jobs/s.

    python bench/drain.py [--jobs 20000]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from _common import count_done, enqueue_noops, machine, scratch_database, timed
from jobqueue.serving import serve_pipeline

SECRET = "bench-worker-secret"


def pull_until_empty(url: str, max_jobs: int) -> Iterator[int]:
    """POSTs to worker_pull until it reports queue_empty; yields each call's processed count."""
    with httpx.Client(headers={"x-job-worker-secret": SECRET}, timeout=120) as http:
        while True:
            answer = http.post(url, json={"max_jobs": max_jobs}).json()
            yield answer["processed"]
            if answer["queue_empty"]:
                return


def drain_with_callers(url: str, callers: int, max_jobs: int) -> None:
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(lambda _: sum(pull_until_empty(url, max_jobs)), range(callers)))


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
    results = {}
    with (
        scratch_database() as dsn,
        tempfile.TemporaryDirectory() as logs,
        serve_pipeline(dsn, SECRET, SECRET, Path(logs)) as (worker, cron),
    ):
        for label, callers in (("worker_pull, 1 caller", 1), ("worker_pull, 4 callers", 4)):
            enqueue_noops(dsn, n)
            drain_with_callers(worker.url, callers, 100)  # warm: learns job durations
            enqueue_noops(dsn, n)
            seconds = timed(lambda c=callers: drain_with_callers(worker.url, c, 100))
            assert count_done(dsn) == n
            results[label] = n / seconds
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
