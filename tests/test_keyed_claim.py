"""The keyed claim reads only a few jobs of each lane (a group's jobs under one key; issue 19's
throughput target) and none of a blocked key's, and is still the claim the full read gives:
whenever claim_candidates says its short read is exact, the full read takes the same jobs in
the same order, and claim_jobs falls back to the full read otherwise. Checked over random queues
on real PostgreSQL, and on the cases that force the fallback."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import pg
from tests.support.queue import Conn, claim, insert_job, job


def candidates(conn: Conn, per_lane: int, limit: int) -> dict[str, Any]:
    row = conn.execute(
        "select c.* from queued_lanes() l, claim_candidates(l.groups, l.keys, %s, %s, null) c",
        (per_lane, limit),
    ).fetchone()
    assert row is not None
    return row


def random_queue(conn: Conn, rng: random.Random) -> None:
    conn.execute("truncate jobs, job_attempts, job_group_turns, rate_limits cascade")
    groups = [None, *(f"g{i}" for i in range(rng.randint(1, 12)))]
    keys = [None, "k1", "k2"]
    conn.execute("select set_rate_limit('k1', p_max_running => %s)", (rng.randint(1, 30),))
    if rng.random() < 0.3:
        conn.execute("select pause_rate_limit('k2', now() + interval '1 hour')")
    now = datetime.now(UTC)
    rows = []
    for _ in range(rng.randint(1, 400)):
        # A few groups hold most jobs, as tenants do; priorities and times vary.
        group = rng.choice(groups[: rng.randint(1, len(groups))])
        rows.append(
            (
                group,
                rng.choice(keys),
                rng.choice([0, 0, 0, 1, 5, -1]),
                now - timedelta(seconds=rng.randint(0, 600)),
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            "insert into jobs (type, group_key, concurrency_key, priority, run_at)"
            " values ('echo', %s, %s, %s, %s)",
            rows,
        )
    # Some groups were served before: turns rotate across claims.
    conn.execute(
        "insert into job_group_turns (group_key, served_at)"
        " select g, now() - random() * interval '1 minute'"
        " from (select distinct coalesce(group_key, '') as g from jobs) d where random() < 0.5"
    )


def test_an_exact_short_read_is_the_full_read(conn: Conn) -> None:
    rng = random.Random(20261206)
    exact = 0
    for _ in range(150):
        random_queue(conn, rng)
        limit = rng.choice([1, 3, 10, 50, 100])
        full = candidates(conn, limit, limit)
        assert full["exact"]
        for per_lane in (1, 2, limit // 4 + 1):
            short = candidates(conn, min(per_lane, limit), limit)
            if short["exact"]:
                exact += 1
                assert short["ids"] == full["ids"], (per_lane, limit)
    assert exact > 100, "the short read is exact in most random queues"


def test_a_group_that_runs_short_is_filled_from_the_full_read(conn: Conn) -> None:
    """A: one job of priority 0, then 100 of priority 5; B: 100 of priority 0. A claim of 100
    takes the 101 priority-0 jobs first (A's one and 99 of B's): a read of 51 per group would
    have taken A's priority-5 jobs instead."""
    a_first = insert_job(conn, "echo", group_key="A", priority=0)
    conn.execute(
        "insert into jobs (type, group_key, priority) select 'echo', 'A', 5"
        " from generate_series(1, 100)"
    )
    conn.execute(
        "insert into jobs (type, group_key, priority) select 'echo', 'B', 0"
        " from generate_series(1, 100)"
    )
    assert not candidates(conn, 51, 100)["exact"]
    taken = [c["id"] for c in claim(conn, limit=100)]
    assert len(taken) == 100 and a_first in taken
    assert {job(conn, i)["priority"] for i in taken} == {0}


def test_a_key_with_little_room_sends_the_claim_to_the_full_read(conn: Conn) -> None:
    """Group A's first jobs are all under a key with one free slot: the short read finds too
    few it may take, says it is not exact, and the claim takes what the full read gives: the
    key's one free slot and every free job behind (its lane is read on its own)."""
    conn.execute("select set_rate_limit('one', p_max_running => 1)")
    conn.execute(
        "insert into jobs (type, group_key, concurrency_key, run_at)"
        " select 'echo', 'A', 'one', now() - interval '1 hour' from generate_series(1, 8)"
    )
    free = [insert_job(conn, "echo", group_key="A") for _ in range(10)]
    assert not candidates(conn, 6, 11)["exact"]
    full = candidates(conn, 11, 11)["ids"]
    taken = [c["id"] for c in claim(conn, limit=11)]
    assert taken == full and len(taken) == 11 and set(free) < set(taken)
    assert sum(job(conn, i)["concurrency_key"] == "one" for i in taken) == 1


def test_turns_are_written_only_when_a_claim_leaves_a_group_waiting(conn: Conn) -> None:
    for group in ("A", "B", "C"):
        insert_job(conn, "echo", group_key=group)
        insert_job(conn, "echo", group_key=group)
    turns = "select group_key, served_at from job_group_turns order by group_key"
    claim(conn, limit=3)  # one of each: new groups get their turn recorded
    first = conn.execute(turns).fetchall()
    assert [t["group_key"] for t in first] == ["A", "B", "C"]
    for group in ("A", "B", "C"):
        insert_job(conn, "echo", group_key=group)
    claim(conn, limit=3)  # every group served again, each with a turn: nothing is written
    assert conn.execute(turns).fetchall() == first
    claim(conn, limit=1)  # one group served, two left waiting: it goes after them next time
    served = {t["group_key"] for t in conn.execute(turns).fetchall() if t not in first}
    rest = [c["id"] for c in claim(conn, limit=2)]
    assert len(served) == 1
    assert {job(conn, i)["group_key"] for i in rest} == {"A", "B", "C"} - served


def heap_rows_read(conn: Conn) -> int:
    """Rows of jobs this transaction has read so far, by index or by scan."""
    row = conn.execute(
        "select coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) as n"
        " from pg_stat_xact_user_tables where relid = 'public.jobs'::regclass"
    ).fetchone()
    assert row is not None
    return int(row["n"])


def test_a_blocked_keys_backlog_is_not_read(conn: Conn) -> None:
    """A key paused, or at its max_running, with 20,000 jobs waiting in 10 groups: a claim
    takes the free jobs behind them reading a few dozen rows, not the backlog (it read all of
    it, 75 ms a claim at 100,000, before lanes)."""
    conn.execute("select set_rate_limit('busy', p_max_running => 1)")
    conn.execute("select set_rate_limit('paused')")
    conn.execute("select pause_rate_limit('paused', now() + interval '1 hour')")
    conn.execute(
        "insert into jobs (type, group_key, concurrency_key, run_at)"
        " select 'echo', 'g' || (n % 10), case when n % 2 = 0 then 'busy' else 'paused' end,"
        " now() - interval '1 hour' from generate_series(1, 20000) n"
    )
    [running] = claim(conn, limit=1)  # 'busy' is now at its max_running
    assert job(conn, running["id"])["concurrency_key"] == "busy"
    free = {insert_job(conn, "echo", group_key=g) for g in ("g1", "g2", "new")}
    free.add(insert_job(conn, "echo"))
    with conn.transaction():
        before = heap_rows_read(conn)
        taken = {c["id"] for c in claim(conn, limit=10)}
        read = heap_rows_read(conn) - before
    assert taken == free
    assert read < 200, f"the claim read {read} rows of jobs"


def test_a_claim_made_while_another_is_uncommitted_takes_the_next_jobs(db: str, conn: Conn) -> None:
    """Group keys and no limited key: the second claim waits for the first to commit, then
    takes the next jobs. It used to find the same candidates, skip them all (locked) and take
    nothing, and its worker reported the queue empty with 990 jobs waiting."""
    conn.execute(
        "insert into jobs (type, group_key)"
        " select 'echo', 'g' || (n % 5) from generate_series(1, 1000) n"
    )
    second_took: list[int] = []
    with pg.connect(db) as first, pg.connect(db) as second:
        with first.transaction():
            first_took = [c["id"] for c in claim(first, worker="first", limit=10)]
            waiting = threading.Thread(
                target=lambda: second_took.extend(
                    c["id"] for c in claim(second, worker="second", limit=10)
                )
            )
            waiting.start()
            waiting.join(0.5)
            assert waiting.is_alive(), "the second claim waits for the first one's commit"
        waiting.join(10)
    assert len(first_took) == 10 and len(second_took) == 10
    assert not set(first_took) & set(second_took)
