"""The fault suite (issue 9): real served functions as subprocesses, real PostgreSQL, and the
faults a production queue meets. Each test ends by checking the invariants: every job in its
expected final state, exactly one successful attempt per done job, no two attempts of a job
overlapping in time, and the functions still serving. Each prints its figures (pytest -s)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobqueue.tools.migrate import apply_migrations
from jobqueue.tools.serving import serve, serve_pipeline
from tests.support import pg
from tests.support.private_pg import private_cluster

pytestmark = pytest.mark.slow

WORKER_SECRET = "worker-secret-faults"
CRON_SECRET = "cron-secret-faults"
HEADERS = {"x-job-worker-secret": WORKER_SECRET}


def enqueue(dsn: str, count: int, input_sql: str = "'{}'::jsonb") -> None:
    with pg.connect(dsn) as conn:
        conn.execute(
            f"insert into jobs (type, input) select 'echo', {input_sql} "
            f"from generate_series(1, {count})"
        )


def check_invariants(dsn: str, expected: int) -> dict[str, int]:
    """Every job done; one successful attempt each; no overlapping attempts of one job."""
    with pg.connect(dsn) as conn:
        statuses = conn.execute("select status, count(*) as n from jobs group by status").fetchall()
        doubled = conn.execute(
            "select count(*) as n from (select job_id from job_attempts where outcome = 'done'"
            " group by job_id having count(*) > 1) d"
        ).fetchone()["n"]
        overlaps = conn.execute(
            "select count(*) as n from job_attempts a join job_attempts b"
            " on a.job_id = b.job_id and b.attempt = a.attempt + 1"
            " where b.started_at < a.finished_at"
        ).fetchone()["n"]
        lost = conn.execute(
            "select count(*) as n from job_attempts where outcome = 'expired'"
        ).fetchone()["n"]
    assert {r["status"]: r["n"] for r in statuses} == {"done": expected}
    assert doubled == 0, "a job succeeded twice"
    assert overlaps == 0, "two attempts of one job overlapped"
    return {"jobs": expected, "duplicates": doubled, "overlaps": overlaps, "expired": lost}


def drain(
    url: str,
    callers: int,
    body: dict[str, Any] | None = None,
    tolerate: Callable[[Exception], bool] = lambda exc: False,
) -> int:
    """`callers` loops POSTing to worker_pull until one sees the queue empty twice."""
    empty = threading.Event()
    calls = 0

    def loop() -> None:
        nonlocal calls
        with httpx.Client(timeout=60) as client:
            while not empty.is_set():
                try:
                    answer = client.post(url, json=body or {"max_jobs": 100}, headers=HEADERS)
                    calls += 1
                    if answer.status_code == 200 and answer.json()["queue_empty"]:
                        empty.set()
                except httpx.HTTPError as exc:
                    if not tolerate(exc):
                        raise
                    time.sleep(0.2)

    with ThreadPoolExecutor(callers) as pool:
        for future in [pool.submit(loop) for _ in range(callers)]:
            future.result()
    return calls


def test_eight_callers_drain_ten_thousand_jobs_once_each(db: str, tmp_path: Path) -> None:
    enqueue(db, 10_000)
    env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}
    with serve("worker_pull", env, tmp_path) as worker:
        started = time.monotonic()
        calls = drain(worker.url, 8)
        took = time.monotonic() - started
        figures = check_invariants(db, 10_000)
        assert httpx.get(worker.url).status_code == 200
    print(f"\n8 callers: {figures}, {calls} calls, {took:.1f} s")


def test_kill_9_mid_batch_loses_nothing(db: str, tmp_path: Path) -> None:
    """worker_pull killed (SIGKILL, master and worker) while it holds a batch: its jobs come
    back when their leases expire (2 s here) and a new instance finishes them."""
    enqueue(db, 400, """'{"sleep_ms": 5}'::jsonb""")
    env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db, "JOB_LEASE_SECONDS": "2"}
    with serve("worker_pull", env, tmp_path) as first:
        httpx.post(first.url, json={"max_jobs": 5}, headers=HEADERS, timeout=30)  # warm up
        request = threading.Thread(
            target=lambda: _swallow(
                lambda: httpx.post(first.url, json={"max_jobs": 100}, headers=HEADERS, timeout=30)
            ),
        )
        request.start()
        time.sleep(0.3)
        with pg.connect(db) as conn:
            held = conn.execute(
                "select count(*) as n from jobs where status = 'running'"
            ).fetchone()
        _kill_tree(first.pid)
        request.join(10)
    killed_at = time.monotonic()
    with serve("worker_pull", env, tmp_path) as second:
        settle(second.url, db)
        recovered = time.monotonic() - killed_at
        figures = check_invariants(db, 400)
    assert held["n"] > 0, "the kill must land while jobs are claimed"
    assert figures["expired"] >= 1
    print(f"\nkill -9: {figures}, {held['n']} held at the kill, recovered in {recovered:.1f} s")


def test_a_worker_slower_than_cron_ticks_timeout_and_two_ticks_at_once(
    db: str, tmp_path: Path
) -> None:
    """cron_tick gives up on calls after 1 s while worker_pull runs 300 ms jobs in batches;
    two ticks run at once. Each job still runs exactly once."""
    enqueue(db, 40, """'{"sleep_ms": 300}'::jsonb""")
    with serve_pipeline(
        db, WORKER_SECRET, CRON_SECRET, tmp_path, cron_env={"WORKER_PULL_TIMEOUT_SECONDS": "1"}
    ) as (worker, cron):

        def tick() -> dict[str, Any]:
            body = {"iterations": 30, "delay": 0, "max_jobs": 10}
            return httpx.post(
                cron.url, json=body, headers={"x-cron-secret": CRON_SECRET}, timeout=120
            ).json()

        with ThreadPoolExecutor(2) as pool:
            summaries = list(pool.map(lambda _: tick(), range(2)))
        settle(worker.url, db)  # whatever the ticks left
        figures = check_invariants(db, 40)
    assert sum(s["errors"] for s in summaries) > 0, "calls must have timed out"
    print(f"\nslow worker, 2 ticks: {figures}, ticks {summaries}")


def test_postgres_stopped_and_restarted_mid_drain(tmp_path: Path) -> None:
    with private_cluster() as cluster:
        apply_migrations(cluster.dsn)
        enqueue(cluster.dsn, 3000, """'{"sleep_ms": 2}'::jsonb""")
        env = {
            "JOB_WORKER_SECRET": WORKER_SECRET,
            "DATABASE_URL": cluster.dsn,
            "JOB_LEASE_SECONDS": "2",
        }
        with serve("worker_pull", env, tmp_path) as worker:

            def restart() -> float:
                time.sleep(0.5)
                with pg.connect(cluster.dsn) as conn:
                    left = conn.execute("select count(*) as n from jobs where status <> 'done'")
                    remaining.append(left.fetchone()["n"])
                cluster.stop()
                time.sleep(1)
                cluster.start()
                return time.monotonic()

            remaining: list[int] = []
            restarter = ThreadPoolExecutor(1).submit(restart)
            drain(worker.url, 2, {"max_jobs": 20}, tolerate=lambda exc: True)
            back_at = restarter.result()
            settle(worker.url, cluster.dsn)
            recovered = time.monotonic() - back_at
            figures = check_invariants(cluster.dsn, 3000)
            assert httpx.get(worker.url).status_code == 200
    assert remaining[0] > 0, "the stop must land mid-drain"
    print(
        f"\npostgres restart: {figures}, {remaining[0]} jobs left at the stop, "
        f"drained {recovered:.1f} s after the restart"
    )


def settle(url: str, dsn: str, seconds: float = 30) -> None:
    """Drains until every job is done: jobs a fault left running come back as their leases
    expire."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        drain(url, 2)
        with pg.connect(dsn) as conn:
            if not conn.execute("select 1 from jobs where status <> 'done' limit 1").fetchone():
                return
        time.sleep(0.5)


def _kill_tree(pid: int) -> None:
    import subprocess

    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    for child in children.stdout.split():
        os.kill(int(child), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


def _swallow(call: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the kill cuts this call off
        call()
