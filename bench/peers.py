"""peers: the same N no-op jobs drained by worker_pull over HTTP (max_jobs 100; 1 and 4
callers), by procrastinate (one worker) and PgQueuer (defaults) when installed, and by pgbench
(1 and 4 clients) running two SQL scripts of bench/ceiling/: ours.sql (our claim_jobs and
finish_jobs, 50 jobs per statement) and minimal.sql (a bare claim UPDATE and a bare
completion UPDATE: the floor of this design). Prints jobs/s, and last the ratio of worker_pull
to the minimal ceiling, 1 caller to 1 client and 4 to 4.

    pip install procrastinate==3.10.0 pgqueuer==1.6.0    # optional, for this benchmark only
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

CEILING = Path(__file__).resolve().parent / "ceiling"


def ours(n: int, callers: int) -> float:
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as logs:
        env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": dsn}
        with serve("worker_pull", env, Path(logs)) as worker:
            enqueue_noops(dsn, 1000)
            drain_with_callers(worker.url, callers, 100)
            enqueue_noops(dsn, n)
            seconds = timed(lambda: drain_with_callers(worker.url, callers, 100))
            assert count_done(dsn) == n
    return n / seconds


def pgbench(n: int, script: str, clients: int) -> float:
    """pgbench running bench/ceiling/SCRIPT until the n jobs are done (50 a transaction)."""
    binary = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    with scratch_database() as dsn:
        enqueue_noops(dsn, n)
        per_client = -(-n // 50 // clients)
        command = [
            binary,
            "-n",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-t",
            str(per_client),
            "-f",
            str(CEILING / script),
            dsn,
        ]
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
    n = args.jobs
    logging.disable(logging.INFO)
    print(machine())
    rates = {f"worker_pull (HTTP, {c} caller(s), max_jobs 100)": ours(n, c) for c in (1, 4)}
    for label, measure in (
        ("procrastinate 3.10 (1 worker)", procrastinate_rate),
        ("PgQueuer 1.6 (defaults)", pgqueuer_rate),
    ):
        try:
            rates[label] = measure(n)
        except ImportError:
            print(f"{label}: not installed, skipped")
    for clients in (1, 4):
        rates[f"pgbench ours.sql, {clients} client(s)"] = pgbench(n, "ours.sql", clients)
        rates[f"pgbench minimal.sql, {clients} client(s)"] = pgbench(n, "minimal.sql", clients)
    for label, rate in rates.items():
        print(f"{label:48s} {rate:10,.0f} jobs/s")
    us = rates["worker_pull (HTTP, 1 caller(s), max_jobs 100)"]
    for peer in ("procrastinate 3.10 (1 worker)", "PgQueuer 1.6 (defaults)"):
        if peer in rates:
            print(f"{'us / ' + peer.split(' (')[0]:48s} {us / rates[peer]:10.1f}x")
    for clients in (1, 4):
        minimal = rates[f"pgbench minimal.sql, {clients} client(s)"]
        sql = rates[f"pgbench ours.sql, {clients} client(s)"]
        print(f"{f'our SQL / minimal SQL, {clients} client(s)':48s} {sql / minimal:10.2f}")
    for callers in (1, 4):
        http = rates[f"worker_pull (HTTP, {callers} caller(s), max_jobs 100)"]
        minimal = rates[f"pgbench minimal.sql, {callers} client(s)"]
        print(f"{f'worker_pull / minimal SQL, {callers} to {callers}':48s} {http / minimal:10.2f}")


if __name__ == "__main__":
    main()
