"""Small factories over the SQL API, so tests read as the queue's own vocabulary."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[dict[str, Any]]


def insert_job(conn: Conn, type: str = "echo", input: Any = None, **columns: Any) -> int:
    columns = {"type": type, "input": Jsonb(input if input is not None else {}), **columns}
    names = ", ".join(columns)
    values = ", ".join(f"%({name})s" for name in columns)
    row = conn.execute(f"insert into jobs ({names}) values ({values}) returning id", columns)
    return int(row.fetchone()["id"])  # type: ignore[index]


def claim(
    conn: Conn, worker: str = "w1", limit: int = 1, lease: int = 300, types: list[str] | None = None
) -> list[dict[str, Any]]:
    return conn.execute(
        "select * from claim_jobs(%s, %s, %s, %s)", (worker, limit, lease, types)
    ).fetchall()


def finish(conn: Conn, *outcomes: dict[str, Any]) -> list[dict[str, Any]]:
    return conn.execute("select * from finish_jobs(%s)", (Jsonb(list(outcomes)),)).fetchall()


def job(conn: Conn, job_id: int) -> dict[str, Any]:
    row = conn.execute("select * from jobs where id = %s", (job_id,)).fetchone()
    assert row is not None, f"job {job_id} does not exist"
    return row


def expire_lease(conn: Conn, job_id: int) -> None:
    """Time passing without sleeping: the job's lease ran out a second ago."""
    conn.execute(
        "update jobs set lease_expires_at = now() - interval '1 second' where id = %s", (job_id,)
    )


def make_runnable(conn: Conn, job_id: int) -> None:
    """Skips a retry's backoff wait."""
    conn.execute("update jobs set run_at = now() where id = %s", (job_id,))
