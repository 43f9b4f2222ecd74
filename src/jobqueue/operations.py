"""What an operator does to the queue, each one call of the SQL API (supabase/migrations/).

The CLI is one client of these; the rules (which job may be retried, what requeue fences) live
in the SQL functions, never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[dict[str, Any]]
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")


def connect(dsn: str) -> Conn:
    return psycopg.connect(
        dsn,
        autocommit=True,
        row_factory=dict_row,
        connect_timeout=5,
        application_name="jobqueue-cli",
    )


def status(conn: Conn) -> dict[str, Any]:
    row = conn.execute("select * from public.job_processing_status").fetchone()
    assert row is not None
    return row


def list_jobs(
    conn: Conn, status: str | None, job_type: str | None, limit: int
) -> list[dict[str, Any]]:
    return conn.execute(
        "select id, type, status, attempts, max_attempts, priority, run_at, error, updated_at"
        " from public.jobs"
        " where (%(status)s::text is null or status = %(status)s)"
        " and (%(type)s::text is null or type = %(type)s)"
        " order by id desc limit %(limit)s",
        {"status": status, "type": job_type, "limit": limit},
    ).fetchall()


def show_job(conn: Conn, job_id: int) -> dict[str, Any] | None:
    job = conn.execute("select * from public.jobs where id = %s", (job_id,)).fetchone()
    if job is None:
        return None
    job["attempt_history"] = conn.execute(
        "select attempt, worker, outcome, error, started_at, finished_at"
        " from public.job_attempts where job_id = %s order by attempt, id",
        (job_id,),
    ).fetchall()
    return job


def each(conn: Conn, function: str, ids: Sequence[int]) -> dict[int, bool]:
    """``function(id)`` for each id (retry_job, cancel_job, requeue_job): whether it changed."""
    rows = conn.execute(
        f"select i as id, public.{function}(i) as changed from unnest(%s::bigint[]) i",
        (list(ids),),
    ).fetchall()
    return {row["id"]: bool(row["changed"]) for row in rows}


def failed_ids(conn: Conn, job_type: str | None) -> list[int]:
    rows = conn.execute(
        "select id from public.jobs where status = 'failed'"
        " and (%s::text is null or type = %s) order by id",
        (job_type, job_type),
    ).fetchall()
    return [row["id"] for row in rows]


def enqueue(
    conn: Conn,
    job_type: str,
    payload: Any,
    *,
    count: int = 1,
    priority: int = 0,
    run_at: datetime | None = None,
    max_attempts: int = 5,
    dedupe_key: str | None = None,
) -> list[int]:
    rows = conn.execute(
        "select public.enqueue_job(%s, %s, %s, %s, %s, %s) as id from generate_series(1, %s)",
        (job_type, Jsonb(payload), priority, run_at, max_attempts, dedupe_key, count),
    ).fetchall()
    return [row["id"] for row in rows]


def tick_body(conn: Conn, iterations: int) -> dict[str, Any]:
    row = conn.execute("select public.job_worker_tick_body(%s) as body", (iterations,)).fetchone()
    assert row is not None
    return dict(row["body"])


def register_upload(conn: Conn, bucket: str, path: str, content_type: str | None) -> str:
    """The row an upload makes: its trigger enqueues the ingest_file job."""
    row = conn.execute(
        "insert into public.ingest_files (bucket, path, content_type) values (%s, %s, %s)"
        " returning id::text",
        (bucket, path, content_type),
    ).fetchone()
    assert row is not None
    return str(row["id"])


def purge(conn: Conn, older_than: timedelta) -> int:
    row = conn.execute("select public.purge_finished_jobs(%s) as n", (older_than,)).fetchone()
    return int(row["n"]) if row else 0
