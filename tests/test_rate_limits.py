"""Limits, snoozes and fairness on real PostgreSQL (issue 19; the README's "Rate limits,
snoozes and fair claiming")."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.support import pg
from tests.support.functions import client
from tests.support.queue import Conn, claim, finish, insert_job, job

SECRET = "limits-secret"
HEADERS = {"x-job-worker-secret": SECRET}


def acquire(conn: Conn, key: str, requests: int = 1, tokens: int = 0) -> datetime | None:
    row = conn.execute("select acquire_rate(%s, %s, %s) as at", (key, requests, tokens)).fetchone()
    assert row is not None
    return row["at"]  # type: ignore[no-any-return]


def test_a_key_without_a_row_has_no_limits(conn: Conn) -> None:
    assert all(acquire(conn, "nobody", 1000, 10**9) is None for _ in range(5))


def test_requests_and_tokens_per_minute_and_when_to_come_back(conn: Conn) -> None:
    conn.execute("select set_rate_limit('k', 3, 100)")
    assert acquire(conn, "k") is None and acquire(conn, "k", 1, 50) is None
    later = acquire(conn, "k", 1, 60)  # 110 tokens > 100: nothing counted
    assert later is not None and timedelta(0) < later - datetime.now(UTC) <= timedelta(seconds=62)
    assert acquire(conn, "k") is None  # the refused call counted nothing
    again = acquire(conn, "k")
    assert again is not None and timedelta(seconds=58) < again - datetime.now(UTC)


def test_acquire_is_atomic_across_sessions(db: str, conn: Conn) -> None:
    """8 sessions racing for a budget of 50 requests: exactly 50 granted, never 51."""
    conn.execute("select set_rate_limit('race', 50)")
    granted: list[int] = []

    def race() -> None:
        mine = 0
        with pg.connect(db) as own:
            for _ in range(30):
                if acquire(own, "race") is None:
                    mine += 1
        granted.append(mine)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 50


@pytest.mark.parametrize(
    ("call", "names"),
    [
        ("select set_rate_limit('bad', -1)", "p_requests_per_minute"),
        ("select set_rate_limit('bad', null, 0)", "p_tokens_per_minute"),
        ("select set_rate_limit('bad', null, null, 0)", "p_max_running"),
    ],
)
def test_a_limit_below_one_is_an_error_naming_it_and_changes_nothing(
    conn: Conn, call: str, names: str
) -> None:
    conn.execute("select set_rate_limit('bad', 10, 10, 10)")
    with pytest.raises(psycopg.errors.RaiseException, match=names):
        conn.execute(call)
    row = conn.execute("select * from rate_limits where key = 'bad'").fetchone()
    assert row is not None
    assert (row["requests_per_minute"], row["tokens_per_minute"], row["max_running"]) == (
        10,
        10,
        10,
    )


def test_more_than_a_minutes_budget_is_an_error(conn: Conn) -> None:
    conn.execute("select set_rate_limit('small', 10, 1000)")
    with pytest.raises(psycopg.errors.RaiseException, match="whole minute allows 1000"):
        acquire(conn, "small", 1, 1001)
    assert conn.execute("select count(*) as n from rate_limit_usage").fetchone() == {"n": 0}


def test_a_pause_never_moves_earlier_and_grants_nothing(conn: Conn) -> None:
    far, near = datetime.now(UTC) + timedelta(minutes=10), datetime.now(UTC) + timedelta(minutes=1)
    conn.execute("select pause_rate_limit('p', %s)", (far,))
    conn.execute("select pause_rate_limit('p', %s)", (near,))
    assert (
        acquire(conn, "p")
        == conn.execute("select paused_until from rate_limits where key = 'p'").fetchone()[
            "paused_until"
        ]
    )
    assert abs((acquire(conn, "p") or near) - far) < timedelta(seconds=1)
    conn.execute("select resume_rate_limit('p')")
    assert acquire(conn, "p") is None


def test_jobs_of_a_paused_key_wait_and_block_nothing_behind_them(conn: Conn) -> None:
    conn.execute("select pause_rate_limit('embeddings:m', now() + interval '1 hour')")
    paused = [
        insert_job(conn, "echo", concurrency_key="embeddings:m", priority=-1) for _ in range(5)
    ]
    free = insert_job(conn, "echo")
    assert [c["id"] for c in claim(conn, limit=10)] == [free]
    conn.execute("select resume_rate_limit('embeddings:m')")
    assert sorted(c["id"] for c in claim(conn, limit=10)) == paused


def test_one_groups_backlog_never_delays_another_groups_job(conn: Conn) -> None:
    conn.execute(
        "insert into jobs (type, group_key) select 'echo', 'A' from generate_series(1, 10000)"
    )
    b = insert_job(conn, "echo", group_key="B")
    first = claim(conn, limit=10)
    assert b in [c["id"] for c in first]
    # Claims of one job take turns too: the group served longest ago goes first.
    c = insert_job(conn, "echo", group_key="C")
    assert [x["id"] for x in claim(conn, limit=1)] == [c]
    assert job(conn, claim(conn, limit=1)[0]["id"])["group_key"] == "A"


def test_without_keys_the_order_is_priority_run_at_id(conn: Conn) -> None:
    late = insert_job(conn, "echo", run_at=datetime.now(UTC) - timedelta(seconds=1))
    early = insert_job(conn, "echo", run_at=datetime.now(UTC) - timedelta(seconds=5))
    urgent = insert_job(conn, "echo", priority=-1)
    assert [c["id"] for c in claim(conn, limit=3)] == [urgent, early, late]


def test_max_running_holds_under_eight_concurrent_callers(db: str, conn: Conn) -> None:
    """Checked from job_attempts' own start and end times: at no instant more than 3 jobs of
    the key were running."""
    conn.execute("select set_rate_limit('three', p_max_running => 3)")
    ids = [insert_job(conn, "echo", concurrency_key="three") for _ in range(40)]

    def caller(name: str) -> None:
        with pg.connect(db) as own:
            while True:
                got = claim(own, worker=name, limit=2)
                if not got:
                    if (
                        own.execute(
                            "select count(*) as n from jobs"
                            " where id = any(%s) and status <> 'done'",
                            (ids,),
                        ).fetchone()["n"]
                        == 0
                    ):
                        return
                    time.sleep(0.01)
                    continue
                time.sleep(0.05)
                finish(own, *({"id": g["id"], "attempt": g["attempts"], "ok": True} for g in got))

    threads = [threading.Thread(target=caller, args=(f"c{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    spans = conn.execute(
        "select started_at, finished_at from job_attempts where job_id = any(%s)", (ids,)
    ).fetchall()
    assert len(spans) == 40
    events = sorted(
        [(s["started_at"], 1) for s in spans] + [(s["finished_at"], -1) for s in spans],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 3, peak


def test_a_snooze_is_not_a_failed_attempt(db: str, conn: Conn, monkeypatch: Any) -> None:
    app = client("worker_pull", {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}, monkeypatch)
    job_id = insert_job(conn, "echo", {"snooze_ms": 1000, "snooze_times": 2})
    [first] = app.post("/", json={}, headers=HEADERS).get_json()["jobs"]
    assert first["status"] == "queued" and first["snoozed"] is True and first["error"] is None
    row = job(conn, job_id)
    assert (row["attempts"], row["max_attempts"], row["snoozes"]) == (1, 6, 1)
    assert timedelta(seconds=0.5) < row["run_at"] - datetime.now(UTC) <= timedelta(seconds=1)
    conn.execute("update jobs set run_at = now() where id = %s", (job_id,))
    assert app.post("/", json={}, headers=HEADERS).get_json()["jobs"][0]["snoozed"] is True
    conn.execute("update jobs set run_at = now() where id = %s", (job_id,))
    [third] = app.post("/", json={}, headers=HEADERS).get_json()["jobs"]
    assert third["status"] == "done" and "snoozed" not in third
    outcomes = [
        r["outcome"]
        for r in conn.execute(
            "select outcome from job_attempts where job_id = %s order by attempt", (job_id,)
        ).fetchall()
    ]
    assert outcomes == ["snoozed", "snoozed", "done"]
    assert job(conn, job_id)["max_attempts"] == 7  # all five failed attempts still to spend


def test_a_stale_worker_cannot_write_after_a_snooze(conn: Conn) -> None:
    job_id = insert_job(conn, "echo")
    [claimed] = claim(conn)
    conn.execute("select snooze_job(%s, %s, 60)", (job_id, claimed["attempts"]))
    [late] = finish(conn, {"id": job_id, "attempt": claimed["attempts"], "ok": True})
    assert late["accepted"] is False and job(conn, job_id)["status"] == "queued"


def test_a_job_cannot_snooze_forever(conn: Conn) -> None:
    job_id = insert_job(conn, "echo")
    conn.execute("update jobs set snoozes = job_max_snoozes() where id = %s", (job_id,))
    [claimed] = claim(conn)
    conn.execute("select snooze_job(%s, %s, 60)", (job_id, claimed["attempts"]))
    row = job(conn, job_id)
    assert row["status"] == "failed" and "snoozed 1000 times" in row["error"]


def test_cron_tick_counts_snoozed_jobs_apart_from_failed_ones(
    db: str, conn: Conn, tmp_path: Any
) -> None:
    from jobqueue.tools.serving import serve_pipeline

    for _ in range(3):
        insert_job(conn, "echo", {"snooze_ms": 60000})
    insert_job(conn, "echo", {"fail": "boom"})
    import httpx

    with serve_pipeline(db, SECRET, "cron-limits", tmp_path) as (_, cron):
        summary = httpx.post(
            cron.url,
            json={"iterations": 1, "delay": 0, "max_jobs": 10},
            headers={"x-cron-secret": "cron-limits"},
            timeout=60,
        ).json()
    assert (summary["snoozed"], summary["failed"], summary["processed"]) == (3, 1, 4)


def test_the_status_view_names_a_paused_key_and_a_full_one_with_jobs_waiting(
    conn: Conn,
) -> None:
    conn.execute("select pause_rate_limit('embeddings:m', now() + interval '1 hour')")
    conn.execute("select set_rate_limit('one', p_max_running => 1)")
    insert_job(conn, "echo", concurrency_key="one")
    claim(conn)  # 'one' is now at its max_running
    old = datetime.now(UTC) - timedelta(minutes=20)
    insert_job(conn, "echo", concurrency_key="embeddings:m", run_at=old)
    insert_job(conn, "echo", concurrency_key="one", run_at=old)
    problems = conn.execute("select problems from job_processing_status").fetchone()["problems"]
    paused = [p for p in problems if "embeddings:m" in p]
    full = [p for p in problems if "rate key one" in p]
    assert paused and "paused until" in paused[0] and "resume_rate_limit" in paused[0]
    assert full and "max_running (1)" in full[0]
