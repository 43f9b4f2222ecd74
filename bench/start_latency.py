"""enqueue -> start latency: from a job's insert (created_at) to its claim (started_at), both on
the database clock. Once with the instant kick (an insert asks cron_tick to run through pg_net),
once with only a scheduler calling cron_tick every --period seconds (pg_cron's is 60 s; the p50
of a period is about half of it). Needs PL/Python in the server for the pg_net stand-in
(tests/sql/pg_net_standin.sql), e.g. after scripts/setup-test-postgres.sh.

    python bench/start_latency.py [--jobs 20] [--period 2]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg

from _common import machine, scratch_database
from jobqueue.tools.serving import serve_pipeline

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-start-latency"


def latencies_ms(dsn: str, jobs: int, spacing: float) -> tuple[list[float], list[float]]:
    """Sorted enqueue -> start and enqueue -> done latencies."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate jobs, job_attempts")
        for _ in range(jobs):
            conn.execute("insert into jobs (type) values ('echo')")
            time.sleep(spacing * random.uniform(0.5, 1.5))
        deadline = time.monotonic() + 120
        while conn.execute("select count(*) from jobs where status <> 'done'").fetchone()[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("jobs were not started within 120 s")
            time.sleep(0.05)
        rows = conn.execute(
            "select extract(epoch from started_at - created_at) * 1000,"
            " extract(epoch from finished_at - created_at) * 1000 from jobs"
        ).fetchall()
    return sorted(float(row[0]) for row in rows), sorted(float(row[1]) for row in rows)


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--period", type=float, default=2.0)
    args = parser.parse_args()
    print(machine())
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as logs:
        with psycopg.connect(dsn, autocommit=True) as conn:
            standin = (ROOT / "tests" / "sql" / "pg_net_standin.sql").read_text()
            conn.execute(standin.encode())
        with serve_pipeline(dsn, SECRET, SECRET, Path(logs)) as (_, cron):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("select set_job_worker_config('cron_tick_url', %s)", (cron.url,))
                conn.execute("select set_job_worker_config('cron_secret', %s)", (SECRET,))
                conn.execute("update job_worker_settings set delay_ms = 0")
                conn.execute("select set_job_kick(true, 0)")
            kicked = latencies_ms(dsn, args.jobs, args.period / 2)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("select set_job_kick(false)")
            stop = threading.Event()

            def scheduler() -> None:
                with httpx.Client(headers={"x-cron-secret": SECRET}, timeout=60) as http:
                    while not stop.wait(args.period):
                        # e.g. a keep-alive connection closed as it was reused
                        with contextlib.suppress(httpx.HTTPError):
                            http.post(cron.url, json={"iterations": 5, "delay": 0})

            thread = threading.Thread(target=scheduler)
            thread.start()
            try:
                scheduled = latencies_ms(dsn, args.jobs, args.period / 2)
            finally:
                stop.set()
                thread.join()
    for label, (started, done) in (
        ("instant kick", kicked),
        (f"scheduler every {args.period:g} s", scheduled),
    ):
        for what, values in (("start", started), ("done", done)):
            print(
                f"{label:22s} enqueue->{what:5s} p50 {percentile(values, 0.5):8.1f} ms"
                f"   p90 {percentile(values, 0.9):8.1f} ms   max {values[-1]:8.1f} ms"
            )
    ratio = percentile(scheduled[0], 0.5) / percentile(kicked[0], 0.5)
    print(f"scheduler p50 / kick p50: {ratio:.1f}x (target: kick p50 under 500 ms)")


if __name__ == "__main__":
    main()
