"""What an operator does to the queue, each one call of the SQL API (supabase/migrations/).

The CLI is one client of these; the rules (which job may be retried, what requeue fences) live
in the SQL functions, never here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def missing_ids(conn: Conn, ids: Sequence[int]) -> list[int]:
    """Which of these ids name no job at all."""
    rows = conn.execute(
        "select i from unnest(%s::bigint[]) i"
        " where not exists (select from public.jobs j where j.id = i) order by i",
        (list(ids),),
    ).fetchall()
    return [int(row["i"]) for row in rows]


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
    progress: Callable[[int], object] | None = None,
) -> list[int]:
    """``count`` jobs in one transaction (all or none), in statements of ``ENQUEUE_BATCH``
    so that ``progress(enqueued so far)`` can be told as they go."""
    ids: list[int] = []
    with conn.transaction():
        while len(ids) < count:
            rows = conn.execute(
                "select public.enqueue_job(%s, %s, %s, %s, %s, %s) as id"
                " from generate_series(1, %s)",
                (
                    job_type,
                    Jsonb(payload),
                    priority,
                    run_at,
                    max_attempts,
                    dedupe_key,
                    min(ENQUEUE_BATCH, count - len(ids)),
                ),
            ).fetchall()
            ids += [row["id"] for row in rows]
            if progress is not None:
                progress(len(ids))
    return ids


ENQUEUE_BATCH = 10_000


def runnable_count(conn: Conn) -> int:
    """Queued jobs whose time has come: what a drain starting now would take first."""
    row = conn.execute(
        "select count(*) as n from public.jobs where status = 'queued' and run_at <= now()"
    ).fetchone()
    return int(row["n"]) if row else 0


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


def purge(conn: Conn, older_than: timedelta, dry_run: bool = False) -> int:
    """purge_finished_jobs(); a dry run is the same call, rolled back (its count is exact)."""
    with conn.transaction(force_rollback=dry_run):
        row = conn.execute("select public.purge_finished_jobs(%s) as n", (older_than,)).fetchone()
    return int(row["n"]) if row else 0


def list_limits(conn: Conn) -> list[dict[str, Any]]:
    """Every rate key with its limits, pause, running jobs and the last minute's usage."""
    return conn.execute(
        "select r.key, r.requests_per_minute, r.tokens_per_minute, r.max_running,"
        " case when r.paused_until > now() then r.paused_until end as paused_until,"
        " (select count(*) from public.jobs j where j.status = 'running'"
        "    and j.concurrency_key = r.key) as running,"
        " (select count(*) from public.jobs j where j.status = 'queued'"
        "    and j.concurrency_key = r.key) as queued,"
        " (select coalesce(sum(u.requests), 0) from public.rate_limit_usage u where u.key = r.key"
        "    and u.second > extract(epoch from now()) - 61) as requests_last_minute,"
        " (select coalesce(sum(u.tokens), 0) from public.rate_limit_usage u where u.key = r.key"
        "    and u.second > extract(epoch from now()) - 61) as tokens_last_minute"
        " from public.rate_limits r order by r.key"
    ).fetchall()


def set_limit(
    conn: Conn, key: str, requests: int | None, tokens: int | None, running: int | None
) -> dict[str, Any]:
    row = conn.execute(
        "select (public.set_rate_limit(%s, %s, %s, %s)).*", (key, requests, tokens, running)
    ).fetchone()
    assert row is not None
    return row


def pause_limit(conn: Conn, key: str, until: datetime) -> datetime:
    row = conn.execute("select public.pause_rate_limit(%s, %s) as until", (key, until)).fetchone()
    assert row is not None
    return row["until"]  # type: ignore[no-any-return]


def resume_limit(conn: Conn, key: str) -> None:
    conn.execute("select public.resume_rate_limit(%s)", (key,))


def search(
    conn: Conn, vector: Sequence[float], count: int, model: str | None, filters: dict[str, str]
) -> list[dict[str, Any]]:
    """The nearest chunks, with their file's bucket and path."""
    kind = conn.execute("select public.chunk_embedding_type() as t").fetchone()
    literal = (
        "[" + ",".join(map(str, vector)) + "]"
        if kind and kind["t"] != "real[]"
        else "{" + ",".join(map(str, vector)) + "}"
    )
    return conn.execute(
        f"select m.*, f.bucket, f.path from public.match_file_chunks("
        f"%s::{kind['t'] if kind else 'real[]'}, %s, %s, %s) m"
        " join public.ingest_files f on f.id = m.file_id",
        (literal, count, model, Jsonb(filters)),
    ).fetchall()


def reembed(conn: Conn, model: str | None, bucket: str | None) -> int:
    """Queues an ingest_file job for every processed file whose chunks are not embedded with
    `model` (any file, without it), in `bucket` when given: the rate limits pace the work."""
    rows = conn.execute(
        "select count(public.enqueue_job('ingest_file', jsonb_build_object('file_id', f.id),"
        "  p_dedupe_key => 'ingest_file:' || f.id::text, p_priority => 10,"
        "  p_concurrency_key => (select s.ingest_concurrency_key"
        "                        from public.job_worker_settings s))) as n"
        " from public.ingest_files f"
        " where f.status = 'processed' and (%(bucket)s::text is null or f.bucket = %(bucket)s)"
        " and (%(model)s::text is null or not exists (select from public.file_chunks c"
        "      where c.file_id = f.id and c.embedding_model = %(model)s))",
        {"model": model, "bucket": bucket},
    ).fetchone()
    return int(rows["n"]) if rows else 0


def files(conn: Conn, file_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The ingest_files rows of these ids, by path (the local run's table)."""
    return conn.execute(
        "select f.path, f.status, f.error, f.metadata, f.progress from public.ingest_files f"
        " where f.id::text = any(%s) order by f.path",
        (list(file_ids),),
    ).fetchall()


def job_counts(conn: Conn, file_ids: Sequence[str]) -> dict[str, int]:
    """The jobs of these files by status: this run's, not the whole database's."""
    rows = conn.execute(
        "select j.status, count(*) as n from public.jobs j"
        " where j.type = 'ingest_file' and j.input ->> 'file_id' = any(%s) group by j.status",
        (list(file_ids),),
    ).fetchall()
    counts = dict.fromkeys(JOB_STATUSES, 0)
    counts.update({r["status"]: int(r["n"]) for r in rows})
    return counts


def live_job(conn: Conn, dedupe_key: str) -> int | None:
    """The queued or running job holding this dedupe key, if any."""
    row = conn.execute(
        "select id from public.jobs where dedupe_key = %s and status in ('queued', 'running')",
        (dedupe_key,),
    ).fetchone()
    return int(row["id"]) if row else None
