"""How many scheduled ticks drain a backlog with the default settings (issue 10).

N queued `echo` jobs; a served worker_pull and cron_tick with their default configuration; each
tick is the POST the schedule sends: `job_worker_tick_body()` (what pg_cron's
`trigger_job_worker()` sends, from `job_worker_settings` as migrated) or the body the SAM,
Cloud Run and GitHub Actions recipes send. Prints ticks until the queue is empty, jobs per
tick, and the minutes that takes at one tick a minute, beside the runbook's 5 jobs a tick.

    python bench/ticks.py [--jobs 10000]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from _common import enqueue_noops, machine, scratch_database
from jobqueue.tools.serving import serve_pipeline

RUNBOOK_JOBS_PER_TICK = 5  # 5 iterations, one job per call
RECIPE_BODY = {"iterations": 5, "delay": 500, "max_jobs": 100}  # infra/ templates
# The documented backlog settings: update job_worker_settings set iterations = 100,
# delay_ms = 0, concurrency = 4 (or the same in a recipe's body).
BACKLOG_BODY = {"iterations": 100, "delay": 0, "max_jobs": 100, "concurrency": 4}


def queued(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from jobs where status <> 'done'").fetchone()
        return int(row[0]) if row else 0


def drain(dsn: str, cron_url: str, body: dict[str, object], jobs: int) -> tuple[int, float]:
    enqueue_noops(dsn, jobs)
    ticks = 0
    started = time.perf_counter()
    while queued(dsn):
        ticks += 1
        answer = httpx.post(cron_url, json=body, headers={"x-cron-secret": "c" * 24}, timeout=600)
        answer.raise_for_status()
    return ticks, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    jobs = parser.parse_args().jobs
    print(machine())
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as logs:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("select job_worker_tick_body()").fetchone()
        assert row is not None
        pg_cron_body = row[0]
        with serve_pipeline(dsn, "w" * 24, "c" * 24, Path(logs)) as (_, cron):
            runbook_ticks = math.ceil(jobs / RUNBOOK_JOBS_PER_TICK)
            print(f"{jobs} queued echo jobs; one tick a minute")
            print(
                f"  runbook (5 iterations, 1 job a call): {runbook_ticks} ticks = "
                f"{runbook_ticks} min"
            )
            for name, body in (
                ("pg_cron trigger_job_worker()", pg_cron_body),
                ("infra/ recipes", RECIPE_BODY),
                ("backlog settings", BACKLOG_BODY),
            ):
                ticks, seconds = drain(dsn, cron.url, body, jobs)
                print(
                    f"  {name} {body}: {ticks} ticks = {ticks} min "
                    f"({jobs / ticks:.0f} jobs a tick, each tick {seconds / ticks:.2f} s of "
                    f"work), {runbook_ticks / ticks:.0f}x the runbook"
                )


if __name__ == "__main__":
    main()
