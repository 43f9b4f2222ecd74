"""No job runs twice at once (issue 16, items 9 to 11 and 15's mid-call 503), with two served
worker_pull instances on one queue and short leases.

Overlap is measured from the handlers' own start and end records (tests/handlers/hostile.py
appends them to a file), never from job_attempts, which is what a worker wrote and could hide
an overlap.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobqueue.tools.serving import Served, serve
from tests.support.queue import Conn, insert_job

pytestmark = pytest.mark.slow

SECRET = "double-run-secret"
HEADERS = {"x-job-worker-secret": SECRET}


@pytest.fixture
def two_workers(db: str, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": db,
        "JOB_LEASE_SECONDS": "3",
        "JOB_HANDLER_MODULES": "tests.handlers.hostile",
        "WORKER_PULL_TIME_BUDGET_SECONDS": "30",
    }
    with serve("worker_pull", env, tmp_path) as a, serve("worker_pull", env, tmp_path) as b:
        yield a, b


def _runs(record: Path) -> dict[tuple[int, int], list[tuple[float, float]]]:
    """(job, attempt) -> [(start, end)] from the handlers' own records."""
    starts: dict[tuple[int, int, int], float] = {}
    runs: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for line in record.read_text().splitlines():
        event, job_id, attempt, pid, at = line.split()
        key = (int(job_id), int(attempt), int(pid))
        if event == "start":
            starts[key] = float(at)
        else:
            runs.setdefault((int(job_id), int(attempt)), []).append((starts.pop(key), float(at)))
    for (job_id, attempt, _), started in starts.items():  # started, never ended
        runs.setdefault((job_id, attempt), []).append((started, float("inf")))
    return runs


def _overlaps(runs: dict[tuple[int, int], list[tuple[float, float]]]) -> list[Any]:
    by_job: dict[int, list[tuple[float, float]]] = {}
    for (job_id, _), intervals in runs.items():
        by_job.setdefault(job_id, []).extend(intervals)
    found = []
    for job_id, intervals in by_job.items():
        intervals.sort()
        for (s1, e1), (s2, e2) in itertools.pairwise(intervals):
            if s2 < e1:
                found.append((job_id, (s1, e1), (s2, e2)))
    return found


def _keep_calling(served: Served, stop: threading.Event, body: dict[str, Any]) -> None:
    with httpx.Client(timeout=60) as http:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                http.post(served.url, json=body, headers=HEADERS)
            time.sleep(0.05)


def _gil_seconds(seconds: float) -> int:
    """How many integers sum(range(n)) adds in about `seconds` here."""
    n = 5_000_000
    started = time.perf_counter()
    sum(range(n))
    return int(n * seconds / (time.perf_counter() - started))


def test_a_handler_holding_the_gil_past_its_lease_is_never_run_twice_at_once(
    two_workers: tuple[Served, Served], conn: Conn, tmp_path: Path
) -> None:
    """sum(range(n)) for about 8 s under a 3 s lease, while another instance keeps claiming:
    the guardian process renews the lease the GIL-bound watchdog cannot."""
    record = tmp_path / "runs.txt"
    record.touch()
    job_id = insert_job(conn, "gil_hold", {"n": _gil_seconds(8.0), "record": str(record)})
    a, b = two_workers
    stop = threading.Event()
    first = threading.Thread(
        target=lambda: httpx.post(a.url, json={"max_jobs": 1}, headers=HEADERS, timeout=120)
    )
    first.start()
    time.sleep(0.5)
    others = [threading.Thread(target=_keep_calling, args=(w, stop, {})) for w in (a, b)]
    for thread in others:
        thread.start()
    first.join()
    time.sleep(1.0)
    stop.set()
    for thread in others:
        thread.join()
    runs = _runs(record)
    print(f"\nGIL-holding runs: {runs}")
    assert _overlaps(runs) == []
    assert len([r for rs in runs.values() for r in rs]) == 1, runs
    row = conn.execute("select status, attempts from jobs where id = %s", (job_id,)).fetchone()
    assert row == {"status": "done", "attempts": 1}


def test_a_blocked_handler_does_not_make_its_finished_batch_mates_run_again(
    two_workers: tuple[Served, Served], conn: Conn, tmp_path: Path
) -> None:
    """A 40-job batch whose 30th job blocks 7 s in one C call under a 3 s lease: no job of the
    batch runs twice and no attempt expires, while the other instance keeps claiming."""
    record = tmp_path / "runs.txt"
    record.touch()
    a, b = two_workers
    for _ in range(20):  # teach instance a that jobs are fast, so it claims big batches
        insert_job(conn, "echo")
    httpx.post(a.url, json={"max_jobs": 20}, headers=HEADERS, timeout=30)
    ids = [
        insert_job(conn, "recorded", {"record": str(record), "block": 7 if i == 29 else 0})
        for i in range(40)
    ]
    stop = threading.Event()
    caller = threading.Thread(
        target=lambda: httpx.post(a.url, json={"max_jobs": 40}, headers=HEADERS, timeout=120)
    )
    caller.start()
    time.sleep(1.0)
    other = threading.Thread(target=_keep_calling, args=(b, stop, {"max_jobs": 10}))
    other.start()
    caller.join()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = conn.execute(
            "select count(*) as n from jobs where id = any(%s) and status in ('done', 'failed')",
            (ids,),
        ).fetchone()
        if done is not None and done["n"] == len(ids):
            break
        time.sleep(0.2)
    stop.set()
    other.join()
    runs = _runs(record)
    assert _overlaps(runs) == []
    ran = {job_id: sum(len(v) for k, v in runs.items() if k[0] == job_id) for job_id in ids}
    twice = {job_id: n for job_id, n in ran.items() if n != 1}
    assert twice == {}, f"ran other than once: {twice}"
    expired = conn.execute(
        "select count(*) as n from job_attempts where job_id = any(%s) and outcome = 'expired'",
        (ids,),
    ).fetchone()
    assert expired == {"n": 0}


def test_a_handler_that_forks_leaves_no_second_worker_behind(
    two_workers: tuple[Served, Served], conn: Conn
) -> None:
    import psutil

    a, _ = two_workers
    job_id = insert_job(conn, "forks")
    before = {p.pid for p in psutil.Process(a.pid).children(recursive=True)}
    with httpx.Client(timeout=30) as http:
        answer = http.post(a.url, json={"max_jobs": 1}, headers=HEADERS)
        assert answer.status_code == 200 and answer.json()["jobs"][0]["status"] == "done"
        time.sleep(0.5)
        for _ in range(5):
            assert http.get(a.url).json()["status"] == "ok"
    after = {p.pid for p in psutil.Process(a.pid).children(recursive=True)}
    leftover = [p for p in after - before if psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    # The guardian process is the one child worker_pull starts on purpose.
    assert all(
        "jobqueue.worker.guardian" in " ".join(psutil.Process(p).cmdline()) for p in leftover
    )
    assert conn.execute("select status from jobs where id = %s", (job_id,)).fetchone() == {
        "status": "done"
    }


def test_a_worker_killed_by_its_handler_has_its_jobs_rescued_at_once(
    two_workers: tuple[Served, Served], conn: Conn
) -> None:
    """os._exit ends the whole worker process (not containable in-process); its guardian then
    shortens the lease it held, so the job is retried in about a second, not after a lease."""
    a, _b = two_workers
    job_id = insert_job(conn, "exits", max_attempts=2)
    with pytest.raises(httpx.HTTPError):
        httpx.post(a.url, json={"max_jobs": 1}, headers=HEADERS, timeout=30)
    deadline = time.monotonic() + 10
    row = None
    while time.monotonic() < deadline:
        row = conn.execute(
            "select lease_expires_at <= now() + interval '2 seconds' as soon, status"
            " from jobs where id = %s",
            (job_id,),
        ).fetchone()
        if row and row["soon"]:
            break
        time.sleep(0.2)
    assert row is not None and row["soon"], row
