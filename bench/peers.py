"""peers: the same N no-op jobs drained by worker_pull (1 caller over HTTP, max_jobs 100), by
procrastinate (one worker), by PgQueuer (defaults) and by pgbench running our own claim and
finish SQL functions, 50 jobs per statement (the ceiling). Prints jobs/s and the ratios.

    pip install procrastinate==3.10.0 pgqueuer==1.6.0    # for this benchmark only
    python bench/peers.py [--jobs 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import count_done, enqueue_noops, machine, scratch_database, timed
from drain import SECRET, drain_with_callers
from jobqueue.tools.serving import serve

PGBENCH_SCRIPT = """\
select count(*) from public.finish_jobs(
  (select coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'attempt', c.attempts, 'ok', true)),
                   '[]')
   from public.claim_jobs('pgbench', 50, 300, null) c),
  'pgbench');
"""


def ours(n: int) -> float:
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as logs:
        env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": dsn}
        with serve("worker_pull", env, Path(logs)) as worker:
            enqueue_noops(dsn, 1000)
            drain_with_callers(worker.url, 1, 100)
            enqueue_noops(dsn, n)
            seconds = timed(lambda: drain_with_callers(worker.url, 1, 100))
            assert count_done(dsn) == n
    return n / seconds


def ceiling(n: int) -> float:
    pgbench = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "claim_finish.sql"
        script.write_text(PGBENCH_SCRIPT)
        enqueue_noops(dsn, n)
        command = [pgbench, "-n", "-c", "1", "-t", str(n // 50), "-f", str(script), dsn]
        seconds = timed(lambda: subprocess.run(command, check=True, capture_output=True))
        assert count_done(dsn) == n
    return n / seconds


def procrastinate_rate(n: int) -> float:
    import procrastinate

    async def run(dsn: str) -> float:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

        @app.task(name="noop")
        def noop() -> None:
            return None

        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            for start in range(0, n, 1000):
                await noop.batch_defer_async(*[{} for _ in range(min(1000, n - start))])
            started = time.perf_counter()
            await app.run_worker_async(wait=False, concurrency=1, install_signal_handlers=False)
            return time.perf_counter() - started

    with scratch_database(migrate=False) as dsn:
        seconds = asyncio.run(run(dsn))
    return n / seconds


def pgqueuer_rate(n: int) -> float:
    import psycopg
    from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
    from pgqueuer.adapters.persistence.queries import Queries
    from pgqueuer.core.qm import QueueManager
    from pgqueuer.domain.types import QueueExecutionMode

    async def run(dsn: str) -> float:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as setup:
            queries = Queries(PsycopgDriver(setup))
            await queries.install()
            for start in range(0, n, 1000):
                size = min(1000, n - start)
                await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            manager = QueueManager(Queries(PsycopgDriver(conn)))

            @manager.entrypoint("noop")
            async def noop(job: object) -> None:
                return None

            started = time.perf_counter()
            await manager.run(mode=QueueExecutionMode.drain)
            return time.perf_counter() - started

    with scratch_database(migrate=False) as dsn:
        seconds = asyncio.run(run(dsn))
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    print(machine())
    rates = {
        "worker_pull (HTTP, 1 caller, max_jobs 100)": ours(args.jobs),
        "procrastinate 3.10 (1 worker)": procrastinate_rate(args.jobs),
        "PgQueuer 1.6 (defaults)": pgqueuer_rate(args.jobs),
        "pgbench: claim_jobs + finish_jobs, 50/stmt": ceiling(args.jobs),
    }
    for label, rate in rates.items():
        print(f"{label:48s} {rate:10,.0f} jobs/s")
    us = rates["worker_pull (HTTP, 1 caller, max_jobs 100)"]
    print(f"{'us / procrastinate':48s} {us / rates['procrastinate 3.10 (1 worker)']:10.1f}x")
    print(f"{'us / PgQueuer':48s} {us / rates['PgQueuer 1.6 (defaults)']:10.1f}x")
    ceiling_rate = rates["pgbench: claim_jobs + finish_jobs, 50/stmt"]
    print(f"{'us / ceiling':48s} {us / ceiling_rate:10.2f}")


if __name__ == "__main__":
    main()
