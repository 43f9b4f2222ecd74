"""The queue's SQL API on a real PostgreSQL: the rules every client relies on."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.support import pg
from tests.support.queue import (
    Conn,
    claim,
    expire_lease,
    finish,
    insert_job,
    job,
    make_runnable,
)


def test_plain_insert_enqueues_a_runnable_job(conn: Conn) -> None:
    job_id = insert_job(conn, "echo", {"x": 1})
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["max_attempts"], row["priority"]) == (
        "queued",
        0,
        5,
        0,
    )
    assert [c["id"] for c in claim(conn)] == [job_id]


def test_upload_creates_exactly_one_ingest_job_in_the_same_transaction(db: str) -> None:
    with pg.connect(db) as conn, conn.transaction():
        file_id = conn.execute(
            "insert into ingest_files (bucket, path) values ('docs', 'a.txt') returning id"
        ).fetchone()["id"]
        inside = conn.execute(
            "select type, status, input->>'file_id' as file_id from jobs"
        ).fetchall()
    assert inside == [{"type": "ingest_file", "status": "queued", "file_id": str(file_id)}]


def test_rolled_back_upload_leaves_neither_file_nor_job(conn: Conn) -> None:
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute("insert into ingest_files (bucket, path) values ('docs', 'a.txt')")
        raise RuntimeError("the uploader's transaction fails")
    counts = conn.execute(
        "select (select count(*) from ingest_files) as files, (select count(*) from jobs) as jobs"
    ).fetchone()
    assert counts == {"files": 0, "jobs": 0}


def test_many_uploads_make_one_job_each(conn: Conn) -> None:
    conn.execute(
        "insert into ingest_files (bucket, path)"
        " select 'docs', 'f' || i from generate_series(1, 50) i"
    )
    rows = conn.execute(
        "select f.id, count(j.id) as jobs from ingest_files f "
        "left join jobs j on j.input->>'file_id' = f.id::text group by f.id"
    ).fetchall()
    assert len(rows) == 50 and all(r["jobs"] == 1 for r in rows)


def test_claim_order_is_priority_then_run_at_then_id(conn: Conn) -> None:
    a = insert_job(conn, "echo", priority=5)
    b = insert_job(conn, "echo", priority=0)
    conn.execute("update jobs set run_at = now() - interval '1 minute' where id = %s", (b,))
    c = insert_job(conn, "echo", priority=0)
    conn.execute("update jobs set run_at = now() - interval '2 minutes' where id = %s", (c,))
    d = insert_job(conn, "echo", priority=0)
    conn.execute("update jobs set run_at = now() - interval '2 minutes' where id = %s", (d,))
    e = insert_job(conn, "echo", priority=-1)
    claimed = [row["id"] for row in claim(conn, limit=10)]
    assert claimed == [e, c, d, b, a]


def test_future_jobs_and_other_types_are_not_claimed(conn: Conn) -> None:
    insert_job(conn, "echo")
    conn.execute("insert into jobs (type, run_at) values ('echo', now() + interval '1 hour')")
    other = insert_job(conn, "resize")
    assert [r["id"] for r in claim(conn, limit=10, types=["resize"])] == [other]
    assert len(claim(conn, limit=10)) == 1


def test_no_job_is_claimed_twice_by_eight_concurrent_claimers(db: str, conn: Conn) -> None:
    conn.execute("insert into jobs (type) select 'echo' from generate_series(1, 3000)")
    claimed: list[list[int]] = [[] for _ in range(8)]

    def claimer(index: int) -> None:
        with pg.connect(db) as own:
            while batch := claim(own, worker=f"w{index}", limit=7):
                claimed[index].extend(row["id"] for row in batch)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [job_id for ids in claimed for job_id in ids]
    assert len(every) == 3000 and len(set(every)) == 3000
    assert sum(1 for ids in claimed if ids) > 1, "the claimers did not run concurrently"
    attempts = conn.execute("select distinct attempts, status from jobs").fetchall()
    assert attempts == [{"attempts": 1, "status": "running"}]


def test_expired_lease_makes_the_job_claimable_again_and_counts_an_attempt(conn: Conn) -> None:
    job_id = insert_job(conn)
    assert claim(conn, worker="crashed")[0]["attempts"] == 1
    assert claim(conn, worker="other") == []
    expire_lease(conn, job_id)
    again = claim(conn, worker="other")
    assert [(r["id"], r["attempts"]) for r in again] == [(job_id, 2)]
    assert job(conn, job_id)["locked_by"] == "other"
    history = conn.execute(
        "select attempt, worker, outcome from job_attempts where job_id = %s", (job_id,)
    ).fetchall()
    assert history == [{"attempt": 1, "worker": "crashed", "outcome": "expired"}]


def test_expired_lease_on_the_last_attempt_fails_the_job(conn: Conn) -> None:
    job_id = insert_job(conn, max_attempts=1)
    claim(conn)
    expire_lease(conn, job_id)
    assert claim(conn) == []
    row = job(conn, job_id)
    assert row["status"] == "failed" and "lease expired" in row["error"]


def test_fencing_refuses_a_stale_worker(conn: Conn) -> None:
    job_id = insert_job(conn)
    claim(conn, worker="slow")
    expire_lease(conn, job_id)
    claim(conn, worker="fresh")
    stale = finish(conn, {"id": job_id, "attempt": 1, "ok": True, "output": {"by": "slow"}})
    assert stale[0]["accepted"] is False and stale[0]["status"] == "running"
    assert conn.execute("select fail_job(%s, 1, 'late')", (job_id,)).fetchone()["fail_job"] is False
    extended = conn.execute(
        "select * from extend_job_leases(array[%s]::bigint[], array[1], 60)", (job_id,)
    ).fetchall()
    assert extended == []
    fresh = finish(conn, {"id": job_id, "attempt": 2, "ok": True, "output": {"by": "fresh"}})
    assert fresh[0]["accepted"] is True
    row = job(conn, job_id)
    assert (row["status"], row["output"]) == ("done", {"by": "fresh"})


def test_complete_stores_output_and_history(conn: Conn) -> None:
    job_id = insert_job(conn)
    claim(conn, worker="w9")
    assert (
        conn.execute("select complete_job(%s, 1, '{\"n\": 3}')", (job_id,)).fetchone()[
            "complete_job"
        ]
        is True
    )
    row = job(conn, job_id)
    assert (row["status"], row["output"], row["error"], row["locked_by"]) == (
        "done",
        {"n": 3},
        None,
        None,
    )
    assert row["finished_at"] is not None


def test_retries_back_off_and_end_in_failed_after_max_attempts(conn: Conn) -> None:
    job_id = insert_job(conn, max_attempts=3)
    delays = []
    for attempt in (1, 2, 3):
        make_runnable(conn, job_id)
        [claimed] = claim(conn)
        assert claimed["attempts"] == attempt
        [result] = finish(
            conn, {"id": job_id, "attempt": attempt, "ok": False, "error": f"boom {attempt}"}
        )
        row = job(conn, job_id)
        if attempt < 3:
            assert result["status"] == row["status"] == "queued"
            delays.append(
                conn.execute(
                    "select extract(epoch from run_at - now()) as s from jobs where id = %s",
                    (job_id,),
                ).fetchone()["s"]
            )
            assert claim(conn) == [], "a retry must wait for its backoff"
    assert (row["status"], row["error"], row["attempts"]) == ("failed", "boom 3", 3)
    # attempt 1 waits 5-15 s, attempt 2 waits 10-30 s: exponential, with jitter.
    assert 4.5 <= delays[0] <= 15.5 and 9.5 <= delays[1] <= 30.5
    history = conn.execute(
        "select attempt, outcome, error from job_attempts where job_id = %s order by attempt",
        (job_id,),
    ).fetchall()
    assert [h["outcome"] for h in history] == ["retry", "retry", "failed"]


def test_jitter_spreads_retries(conn: Conn) -> None:
    delays = conn.execute(
        "select distinct extract(epoch from job_retry_delay(3)) as s from generate_series(1, 20)"
    ).fetchall()
    assert len(delays) > 10 and all(20 <= d["s"] <= 60 for d in delays)


def test_permanent_failure_skips_retries(conn: Conn) -> None:
    job_id = insert_job(conn)
    claim(conn)
    [result] = finish(
        conn, {"id": job_id, "attempt": 1, "ok": False, "error": "bad input", "permanent": True}
    )
    assert result["status"] == "failed" and job(conn, job_id)["attempts"] == 1


def test_requested_retry_delay_is_used(conn: Conn) -> None:
    job_id = insert_job(conn)
    claim(conn)
    finish(conn, {"id": job_id, "attempt": 1, "ok": False, "error": "429", "retry_in_ms": 0})
    assert [r["id"] for r in claim(conn)] == [job_id]


def test_cancel_stops_a_queued_job_and_fences_a_running_one(conn: Conn) -> None:
    queued = insert_job(conn)
    running = insert_job(conn)
    assert [r["id"] for r in claim(conn, types=None)] == [queued]
    conn.execute("select cancel_job(%s)", (queued,))
    [claimed] = claim(conn)
    assert claimed["id"] == running
    assert conn.execute("select cancel_job(%s) as c", (running,)).fetchone()["c"] is True
    [late] = finish(conn, {"id": running, "attempt": 1, "ok": True})
    assert late["accepted"] is False and job(conn, running)["status"] == "cancelled"
    assert conn.execute("select cancel_job(%s) as c", (running,)).fetchone()["c"] is False


def test_retry_requeues_a_failed_job_with_another_attempt(conn: Conn) -> None:
    job_id = insert_job(conn, max_attempts=1)
    claim(conn)
    finish(conn, {"id": job_id, "attempt": 1, "ok": False, "error": "x"})
    assert job(conn, job_id)["status"] == "failed"
    assert conn.execute("select retry_job(%s) as r", (job_id,)).fetchone()["r"] is True
    [again] = claim(conn)
    assert (again["id"], again["attempts"]) == (job_id, 2)
    finish(conn, {"id": job_id, "attempt": 2, "ok": True})
    assert job(conn, job_id)["status"] == "done"
    assert conn.execute("select retry_job(%s) as r", (job_id,)).fetchone()["r"] is False


def test_release_gives_back_unstarted_jobs_without_spending_an_attempt(conn: Conn) -> None:
    job_id = insert_job(conn)
    [claimed] = claim(conn)
    released = conn.execute(
        "select * from release_jobs(array[%s]::bigint[], array[%s])", (job_id, claimed["attempts"])
    ).fetchall()
    assert len(released) == 1
    row = job(conn, job_id)
    # The claim is not counted against max_attempts, but its token is never reused.
    assert (row["status"], row["attempts"], row["max_attempts"]) == ("queued", 1, 6)


def test_a_released_claims_token_is_never_issued_again(conn: Conn) -> None:
    """A claims (attempt 1) and releases; B claims: B's attempt is 2, so A's late finish is
    refused and B's accepted."""
    job_id = insert_job(conn)
    [a] = claim(conn, "A")
    conn.execute("select release_jobs(array[%s]::bigint[], array[%s])", (job_id, a["attempts"]))
    [b] = claim(conn, "B")
    assert b["attempts"] != a["attempts"]
    [late] = finish(conn, {"id": job_id, "attempt": a["attempts"], "ok": True})
    [current] = finish(conn, {"id": job_id, "attempt": b["attempts"], "ok": True})
    assert (late["accepted"], current["accepted"]) == (False, True)


def test_a_cancelled_run_is_recorded_and_a_retry_waits_for_its_lease(conn: Conn) -> None:
    job_id = insert_job(conn)
    [claimed] = claim(conn, "A", lease=60)
    conn.execute("select cancel_job(%s)", (job_id,))
    attempts = conn.execute(
        "select attempt, worker, outcome from job_attempts where job_id = %s", (job_id,)
    ).fetchall()
    assert attempts == [{"attempt": claimed["attempts"], "worker": "A", "outcome": "cancelled"}]
    assert conn.execute("select retry_job(%s) as r", (job_id,)).fetchone()["r"] is True
    row = job(conn, job_id)
    assert row["status"] == "queued" and row["run_at"] >= claimed["lease_expires_at"]
    assert claim(conn, "B") == []  # the cancelled run may still be going for a minute


def test_enqueue_with_a_dedupe_key_never_returns_null_when_the_live_job_finishes(
    db: str, conn: Conn
) -> None:
    """The window between enqueue_job's INSERT ... ON CONFLICT and its look-up, held open by a
    test-only statement trigger: the live job finishes inside it. Before the fix the call
    returned NULL and enqueued nothing."""
    conn.execute(
        "create function pause_enqueue() returns trigger language plpgsql as $$"
        " begin if current_setting('jobqueue.pause', true) = 'on' then"
        " perform pg_sleep(0.5); end if; return null; end $$"
    )
    conn.execute(
        "create trigger pause_enqueue after insert on jobs"
        " for each statement execute function pause_enqueue()"
    )
    live = conn.execute("select enqueue_job('echo', '{}', p_dedupe_key => 'k') as id").fetchone()
    result: dict[str, Any] = {}

    def enqueue() -> None:
        with pg.connect(db) as other:
            other.execute("set jobqueue.pause = 'on'")
            result["id"] = other.execute(
                "select enqueue_job('echo', '{}', p_dedupe_key => 'k') as id"
            ).fetchone()["id"]

    thread = threading.Thread(target=enqueue)
    thread.start()
    time.sleep(0.2)  # inside the pause: the conflict was seen, the look-up not yet made
    [claimed] = claim(conn)
    finish(conn, {"id": claimed["id"], "attempt": claimed["attempts"], "ok": True})
    thread.join()
    assert result["id"] is not None and result["id"] != live["id"]
    assert job(conn, result["id"])["status"] == "queued"


def test_dedupe_key_allows_one_live_job(conn: Conn) -> None:
    first = conn.execute("select enqueue_job('echo', '{}', p_dedupe_key => 'k') as id").fetchone()
    second = conn.execute("select enqueue_job('echo', '{}', p_dedupe_key => 'k') as id").fetchone()
    assert first == second
    [claimed] = claim(conn)
    finish(conn, {"id": claimed["id"], "attempt": 1, "ok": True})
    third = conn.execute("select enqueue_job('echo', '{}', p_dedupe_key => 'k') as id").fetchone()
    assert third != first


def test_ingest_file_row_follows_its_job(conn: Conn) -> None:
    file_id = conn.execute(
        "insert into ingest_files (bucket, path) values ('docs', 'x.pdf') returning id"
    ).fetchone()["id"]
    [claimed] = claim(conn)
    status = lambda: conn.execute(  # noqa: E731
        "select status, error from ingest_files where id = %s", (file_id,)
    ).fetchone()
    assert status()["status"] == "processing"
    finish(
        conn, {"id": claimed["id"], "attempt": 1, "ok": False, "error": "gone", "permanent": True}
    )
    assert status() == {"status": "failed", "error": "gone"}


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_read_jobs_or_call_the_queue(conn: Conn, role: str) -> None:
    insert_job(conn)
    conn.execute(f"set role {role}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select * from jobs")
    for call in (
        "select * from claim_jobs('x', 1, 60, null)",
        "select cancel_job(1)",
        "select trigger_job_worker()",
        "select manual_process_jobs(1)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(call)


def test_service_role_can_use_the_queue(conn: Conn) -> None:
    job_id = insert_job(conn)
    conn.execute("set role service_role")
    assert [r["id"] for r in claim(conn)] == [job_id]
    assert conn.execute("select count(*) as n from jobs").fetchone()["n"] == 1


def test_every_named_query_matches_the_schema(conn: Conn) -> None:
    from jobqueue.queries import queries

    params: dict[str, Any] = {
        "p_worker": "w",
        "p_limit": 1,
        "p_lease_seconds": 1,
        "p_types": None,
        "p_outcomes": "[]",
        "p_ids": [],
        "p_attempts": [],
        "p_file_id": "00000000-0000-0000-0000-000000000000",
        "p_text": "",
        "p_metadata": "{}",
        "p_content_type": None,
        "p_size_bytes": None,
    }
    for name, query in queries().items():
        conn.execute("explain " + query, params)  # a drifted query fails here, by name
        assert name


def test_claim_and_finish_never_scan_the_whole_table(conn: Conn) -> None:
    """A SQL function's plan is generic; written as a join, the claim hashed every row of jobs
    per call. Counted in the transaction's own statistics, so no timing is involved."""
    conn.execute("insert into jobs (type) select 'echo' from generate_series(1, 20000)")
    conn.execute("analyze jobs")
    with conn.transaction():
        claimed = claim(conn, limit=100)
        finish(conn, *({"id": c["id"], "attempt": 1, "ok": True} for c in claimed))
        conn.execute("select * from claim_jobs('w', 50, 1, null)")
        conn.execute(
            "update jobs set lease_expires_at = now() - interval '1 s' where status = 'running'"
        )
        conn.execute("select rescue_expired_jobs()")
        scans = conn.execute(
            "select seq_scan from pg_stat_xact_user_tables where relname = 'jobs'"
        ).fetchone()
    assert len(claimed) == 100 and scans == {"seq_scan": 0}


def test_ingest_status_follows_its_job_by_primary_key(conn: Conn) -> None:
    """Claiming ingest jobs updates their files through the primary key: comparing id::text
    read every ingest_files row per job (1.4 s for 100 claims beside 100k files)."""
    conn.execute(
        "insert into ingest_files (bucket, path)"
        " select 'b', 'f' || g from generate_series(1, 5000) g"
    )
    conn.execute("analyze ingest_files")
    with conn.transaction():
        claimed = claim(conn, limit=100, types=["ingest_file"])
        scans = conn.execute(
            "select seq_scan from pg_stat_xact_user_tables where relname = 'ingest_files'"
        ).fetchone()
        processing = conn.execute(
            "select count(*) as n from ingest_files where status = 'processing'"
        ).fetchone()
    assert len(claimed) == 100 and processing == {"n": 100}
    assert scans == {"seq_scan": 0}


def test_an_ingest_job_naming_no_valid_file_touches_no_file(conn: Conn) -> None:
    conn.execute("insert into ingest_files (bucket, path) values ('b', 'p')")
    job_id = insert_job(conn, "ingest_file", {"file_id": "not-a-uuid"})
    conn.execute("update jobs set status = 'cancelled' where id = %s", (job_id,))
    assert conn.execute("select status from ingest_files").fetchone() == {"status": "pending"}


def test_retry_refuses_when_the_dedupe_key_already_has_a_live_job(conn: Conn) -> None:
    old = insert_job(conn, "echo", dedupe_key="k")
    conn.execute("select cancel_job(%s)", (old,))
    new = insert_job(conn, "echo", dedupe_key="k")
    retried = conn.execute("select retry_job(%s) as ok", (old,)).fetchone()
    assert retried == {"ok": False}
    assert (job(conn, old)["status"], job(conn, new)["status"]) == ("cancelled", "queued")
    conn.execute("select cancel_job(%s)", (new,))
    assert conn.execute("select retry_job(%s) as ok", (old,)).fetchone() == {"ok": True}


def test_requeue_puts_a_stuck_running_job_back_at_once_and_fences_its_worker(conn: Conn) -> None:
    job_id = insert_job(conn, "echo", max_attempts=1)
    [held] = claim(conn, worker="dead")
    assert conn.execute("select requeue_job(%s) as ok", (job_id,)).fetchone() == {"ok": True}
    row = job(conn, job_id)
    assert (row["status"], row["max_attempts"]) == ("queued", 2), "one more try than it used"
    [again] = claim(conn, worker="alive")
    assert again["attempts"] == 2
    [refused] = finish(conn, {"id": job_id, "attempt": held["attempts"], "ok": True})
    assert refused["accepted"] is False
    [accepted] = finish(conn, {"id": job_id, "attempt": 2, "ok": True})
    assert accepted["accepted"] is True and job(conn, job_id)["status"] == "done"
    history = conn.execute(
        "select attempt, worker, outcome from job_attempts where job_id = %s order by id", (job_id,)
    ).fetchall()
    assert history == [
        {"attempt": 1, "worker": "dead", "outcome": "expired"},
        {"attempt": 2, "worker": None, "outcome": "done"},
    ]
    assert conn.execute("select requeue_job(%s) as ok", (job_id,)).fetchone() == {"ok": False}


def test_a_retry_delay_beyond_what_an_interval_holds_is_capped(conn: Conn) -> None:
    job_id = insert_job(conn, "echo")
    [held] = claim(conn)
    [row] = finish(
        conn,
        {
            "id": job_id,
            "attempt": held["attempts"],
            "ok": False,
            "error": "x",
            "retry_in_ms": 9_000_000_000_000_000,
        },
    )
    assert row["status"] == "queued"
    wait = conn.execute(
        "select extract(epoch from run_at - now()) as s from jobs where id = %s", (job_id,)
    ).fetchone()["s"]
    assert 29 * 86400 < float(wait) <= 30 * 86400


def test_finish_and_claim_records_then_claims_in_one_statement(conn: Conn) -> None:
    """What worker_pull sends per batch: the outcomes (one for a job that is not running
    refused, as finish_jobs refuses it), then the claim, which already sees the finished
    job's max_running slot free. No scan of the whole table either."""
    conn.execute("select set_rate_limit('one', p_max_running => 1)")
    first = insert_job(conn, "echo", concurrency_key="one")
    second = insert_job(conn, "echo", concurrency_key="one")
    conn.execute("insert into jobs (type) select 'echo' from generate_series(1, 20000)")
    conn.execute("analyze jobs")
    [held] = claim(conn, limit=1)
    assert held["id"] == first
    outcomes = [
        {"id": first, "attempt": 1, "ok": True, "output": {"n": 1}},
        {"id": second, "attempt": 1, "ok": True},  # not running: refused
    ]
    with conn.transaction():
        rows = conn.execute(
            "select * from finish_and_claim_jobs(%s, 'w1', 3, 300, null)", (Jsonb(outcomes),)
        ).fetchall()
        scans = conn.execute(
            "select seq_scan from pg_stat_xact_user_tables where relname = 'jobs'"
        ).fetchone()
    finished = [r for r in rows if r["kind"] == "finished"]
    claimed = [r for r in rows if r["kind"] == "claimed"]
    assert sorted((r["id"], r["accepted"]) for r in finished) == [(first, True), (second, False)]
    assert job(conn, first)["status"] == "done"
    assert second in [r["id"] for r in claimed] and len(claimed) == 3
    assert all(r["status"] == "running" and r["attempts"] == 1 for r in claimed)
    assert scans == {"seq_scan": 0}
