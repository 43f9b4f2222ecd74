"""memory: peak RSS of a served worker_pull while it drains N no-op jobs (max_jobs 100, one
caller), sampled from /proc every 20 ms, with the peak after the first tenth of the jobs beside
it: a flat line means memory does not grow with the number of jobs.

    python bench/memory.py [--jobs 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

from _common import count_done, enqueue_noops, machine, scratch_database
from drain import SECRET, pull_until_empty
from jobqueue.tools.serving import serve


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (gunicorn's master and its worker)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        pids += [int(child) for child in children]
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    n = args.jobs
    print(machine())
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as logs:
        env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": dsn}
        with serve("worker_pull", env, Path(logs)) as worker:
            enqueue_noops(dsn, n)
            peak = 0.0
            processed = 0
            peak_after_tenth: float | None = None
            stop = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not stop.wait(0.02):
                    peak = max(peak, tree_rss_mb(worker.pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            for processed_now in pull_until_empty(worker.url, 100):
                processed += processed_now
                if peak_after_tenth is None and processed >= n // 10:
                    peak_after_tenth = peak
            stop.set()
            sampler.join()
            assert count_done(dsn) == n
    print(f"worker_pull peak RSS after {n // 10:,} jobs: {peak_after_tenth or 0:6.1f} MB")
    print(f"worker_pull peak RSS after {n:,} jobs: {peak:6.1f} MB (target < 150 MB)")


if __name__ == "__main__":
    main()
