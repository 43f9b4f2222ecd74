"""Shared by the benchmarks: a scratch database on the local server, bulk enqueue, reporting."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jobqueue.tools.migrate import apply_migrations

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(migrate: bool = True) -> Iterator[str]:
    """A new database, migrated, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(SERVER)
    params["dbname"] = name
    dsn = make_conninfo(**params)
    try:
        if migrate:
            apply_migrations(dsn)
        yield dsn
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def enqueue_noops(dsn: str, count: int, type: str = "echo", groups: int = 0) -> None:
    """``count`` runnable jobs; with ``groups``, spread over that many group keys (tenants) and
    all under the concurrency key ``bench``, limited to 1,000 running: limits and turns in
    use, with room to spare, so only their cost shows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate jobs, job_attempts, job_group_turns")
        if groups:
            conn.execute("select set_rate_limit('bench', p_max_running => 1000)")
            conn.execute(
                "insert into jobs (type, group_key, concurrency_key) select %s,"
                " 'tenant-' || (n %% %s), 'bench' from generate_series(1, %s) n",
                (type, groups, count),
            )
        else:
            conn.execute(
                "insert into jobs (type) select %s from generate_series(1, %s)", (type, count)
            )
        conn.execute("vacuum analyze jobs")


def count_done(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from jobs where status = 'done'").fetchone()
        return int(row[0]) if row else 0


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    with psycopg.connect(SERVER) as conn:
        version = conn.execute("show server_version").fetchone()
        fsync = conn.execute("show fsync").fetchone()
    cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return (
        f"{platform.node()}: {cpu} cores, Python {platform.python_version()}, "
        f"PostgreSQL {version[0] if version else '?'} (fsync {fsync[0] if fsync else '?'})"
    )
