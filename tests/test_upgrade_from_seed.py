"""Upgrading a live seed-runbook set-up in place (issue 18, item 1).

Two seed shapes, as a team that followed the runbook would have them: uuid ids with the
runbook's statuses, and bigint ids with other status words and column names. Each holds
thousands of rows in every state, the seed's trigger, functions, view (and, with pg_cron, its
schedule). Migrating (`jobqueue migrate`, and the real Supabase CLI's `db push`) keeps every row
with its status, queues the unfinished work, which is then processed, and replaces the old
objects with ours.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from jobqueue.tools.migrate import apply_migrations
from tests.support import pg
from tests.support.functions import client
from tests.support.queue import Conn

PER_STATE = 500

SEED_FUNCTIONS = """
create or replace function public.trigger_job_worker() returns void
language plpgsql as $$ begin perform 1; end $$;
create or replace function public.manual_process_jobs(job_count integer default 5)
returns text language plpgsql as $$ begin return 'called ' || job_count; end $$;
create or replace view public.job_processing_status as
  select count(*) filter (where status = 'queued') as queued_jobs from public.jobs;
"""

# The runbook's shape: uuid ids, queued/processing/done/failed, a trigger queuing a job.
SEED_UUID = (
    """
create table public.ingest_files (
  id uuid primary key default gen_random_uuid(),
  bucket text not null, path text not null,
  status text not null default 'pending',
  created_at timestamptz default now());
create table public.jobs (
  id uuid primary key default gen_random_uuid(),
  type text not null,
  status text not null default 'queued'
    check (status in ('queued', 'processing', 'done', 'failed')),
  input jsonb default '{}', output jsonb, error text,
  created_at timestamptz default now(), updated_at timestamptz default now());
create index jobs_status_idx on public.jobs (status);
create function public.create_ingest_job() returns trigger language plpgsql as $$
begin
  insert into public.jobs (type, input)
  values ('ingest_file', jsonb_build_object('file_id', new.id));
  return new;
end $$;
create trigger on_file_upload after insert on public.ingest_files
  for each row execute function public.create_ingest_job();
"""
    + SEED_FUNCTIONS
)

# Another likely shape: bigint ids, other words for the states, payload/result columns.
SEED_BIGINT = (
    """
create table public.ingest_files (
  id bigserial primary key,
  bucket text not null, path text not null,
  status text not null default 'uploaded',
  mime_type text,
  created_at timestamptz default now(), updated_at timestamptz default now());
create table public.jobs (
  id bigserial primary key,
  type text not null,
  status text not null default 'pending',
  payload jsonb not null default '{}', result jsonb, error_message text,
  attempts integer not null default 0,
  created_at timestamptz default now(), updated_at timestamptz default now());
create function public.create_ingest_job() returns trigger language plpgsql as $$
begin
  insert into public.jobs (type, payload)
  values ('ingest_file', jsonb_build_object('file_id', new.id));
  return new;
end $$;
create trigger on_file_upload after insert on public.ingest_files
  for each row execute function public.create_ingest_job();
"""
    + SEED_FUNCTIONS
)

SHAPES: dict[str, dict[str, Any]] = {
    "uuid": {
        "schema": SEED_UUID,
        "job_states": {
            "queued": "queued",
            "processing": "queued",
            "done": "done",
            "failed": "failed",
        },
        "file_states": {
            "pending": "pending",
            "processing": "pending",
            "processed": "processed",
            "failed": "failed",
        },
        "input": "input",
        "error": "error",
    },
    "bigint": {
        "schema": SEED_BIGINT,
        "job_states": {
            "pending": "queued",
            "running": "queued",
            "completed": "done",
            "error": "failed",
            "cancelled": "cancelled",
        },
        "file_states": {
            "uploaded": "pending",
            "processing": "pending",
            "done": "processed",
            "error": "failed",
        },
        "input": "payload",
        "error": "error_message",
    },
}


def _seed(dsn: str, shape: dict[str, Any]) -> None:
    """The seed set-up with PER_STATE files and file jobs per state, and PER_STATE echo jobs
    per job state. File jobs follow their file's state as the seed's worker left them."""
    with pg.connect(dsn) as conn:
        conn.execute(shape["schema"])
        job_for_file = dict(zip(shape["file_states"], shape["job_states"], strict=False))
        for file_state in shape["file_states"]:
            conn.execute(
                "insert into ingest_files (bucket, path, status)"
                " select 'uploads', format('seed/%%s/%%s.txt', %(s)s::text, n), %(s)s::text"
                " from generate_series(1, %(n)s) n",
                {"s": file_state, "n": PER_STATE},
            )
            # The seed trigger queued one job per file; move it to the file's state.
            conn.execute(
                f"update jobs set status = %s::text from ingest_files f"
                f" where jobs.{shape['input']} ->> 'file_id' = f.id::text and f.status = %s",
                (job_for_file[file_state], file_state),
            )
        conn.execute("alter table ingest_files disable trigger on_file_upload")
        for job_state in shape["job_states"]:
            conn.execute(
                f"insert into jobs (type, status, {shape['input']}, {shape['error']})"
                " select 'echo', %s, jsonb_build_object('n', n),"
                " case when %s::text in ('failed', 'error') then 'seed error' end"
                " from generate_series(1, %s) n",
                (job_state, job_state, PER_STATE),
            )
        conn.execute("alter table ingest_files enable trigger on_file_upload")


def _before(dsn: str, shape: dict[str, Any]) -> tuple[Counter[str], Counter[str], int, int]:
    """What the upgrade must give: each seed state counted under the state it maps to."""
    jobs: Counter[str] = Counter()
    files: Counter[str] = Counter()
    with pg.connect(dsn) as conn:
        for r in conn.execute("select status, count(*) as n from jobs group by status"):
            jobs[shape["job_states"][r["status"]]] += r["n"]
        for r in conn.execute("select status, count(*) as n from ingest_files group by status"):
            files[shape["file_states"][r["status"]]] += r["n"]
    return jobs, files, sum(jobs.values()), sum(files.values())


def _after_checks(dsn: str, expected: tuple[Counter[str], Counter[str], int, int]) -> None:
    jobs, files, total_jobs, total_files = expected
    with pg.connect(dsn) as conn:
        got_jobs = Counter(
            {
                r["status"]: r["n"]
                for r in conn.execute(
                    "select status, count(*) as n from jobs group by status"
                ).fetchall()
            }
        )
        got_files = Counter(
            {
                r["status"]: r["n"]
                for r in conn.execute(
                    "select status, count(*) as n from ingest_files group by status"
                ).fetchall()
            }
        )
        assert got_jobs == jobs and sum(got_jobs.values()) == total_jobs
        assert got_files == files and sum(got_files.values()) == total_files
        # Every unfinished file has its queued job, named by the new id.
        orphans = conn.execute(
            "select count(*) as n from ingest_files f where f.status = 'pending' and not exists"
            " (select from jobs j where j.status = 'queued' and j.input ->> 'file_id' = f.id::text)"
        ).fetchone()
        assert orphans == {"n": 0}
        # The seed's objects are ours now.
        result = conn.execute(
            "select pg_get_function_result('public.trigger_job_worker()'::regprocedure) as r"
        ).fetchone()
        assert result["r"] != "void"
        columns = {
            r["column_name"]
            for r in conn.execute(
                "select column_name from information_schema.columns"
                " where table_name = 'job_processing_status'"
            ).fetchall()
        }
        assert {"problems", "worker_configured", "oldest_queued_age"} <= columns
        triggers = {
            r["tgname"]
            for r in conn.execute(
                "select tgname from pg_trigger where tgrelid = 'public.ingest_files'::regclass"
                " and not tgisinternal"
            ).fetchall()
        }
        assert "on_file_upload" not in triggers and "ingest_files_enqueue_job" in triggers
        # The old rows are still there, set aside, out of the API roles' reach.
        kept = conn.execute("select count(*) as n from jobs_before_jobqueue").fetchone()
        assert kept["n"] == total_jobs
        assert conn.execute(
            "select has_table_privilege('anon', 'public.jobs_before_jobqueue', 'select') as v"
        ).fetchone() == {"v": False}


def _process_queued_echo_jobs(conn: Conn, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = client("worker_pull", {"JOB_WORKER_SECRET": "s", "DATABASE_URL": db}, monkeypatch)
    queued = conn.execute(
        "select count(*) as n from jobs where type = 'echo' and status = 'queued'"
    ).fetchone()["n"]
    assert queued >= PER_STATE
    for _ in range(queued // 100 + 5):
        app.post(
            "/", json={"max_jobs": 100, "job_types": ["echo"]}, headers={"x-job-worker-secret": "s"}
        )
    left = conn.execute(
        "select count(*) as n from jobs where type = 'echo' and status = 'queued'"
    ).fetchone()
    assert left == {"n": 0}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_jobqueue_migrate_upgrades_a_seed_set_up_in_place(
    empty_db: str, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(empty_db, SHAPES[shape])
    expected = _before(empty_db, SHAPES[shape])
    apply_migrations(empty_db)
    _after_checks(empty_db, expected)
    apply_migrations(empty_db)  # again: nothing copied twice
    _after_checks(empty_db, expected)
    with pg.connect(empty_db) as conn:
        _process_queued_echo_jobs(conn, empty_db, monkeypatch)
        # A new upload after the upgrade is one ingest_file job, as for any of ours.
        row = conn.execute(
            "insert into ingest_files (bucket, path) values ('uploads', 'new.txt')"
            " returning id::text"
        ).fetchone()
        jobs = conn.execute(
            "select type, status from jobs where input ->> 'file_id' = %s", (row["id"],)
        ).fetchall()
        assert jobs == [{"type": "ingest_file", "status": "queued"}]


def test_old_ingest_jobs_are_processed_after_the_upgrade(
    empty_db: str, monkeypatch: pytest.MonkeyPatch, httpserver: Any
) -> None:
    """The bigint shape's files got new (uuid) ids: their old queued ingest_file jobs follow
    them, and our worker processes them from Storage to `processed`."""
    import re

    from tests.support.ingest import KEY, Storage

    _seed(empty_db, SHAPES["bigint"])
    apply_migrations(empty_db)
    storage = Storage()
    httpserver.expect_request(re.compile("^/storage/v1/object/.*")).respond_with_handler(storage)
    with pg.connect(empty_db) as conn:
        files = conn.execute(
            "select id::text, path from ingest_files where status = 'pending' limit 20"
        ).fetchall()
        # Only these 20 are served; the test processes their jobs alone.
        for f in files:
            storage.objects[f"uploads/{f['path']}"] = f"text of {f['path']}".encode()
        ids = [f["id"] for f in files]
        app = client(
            "worker_pull",
            {
                "JOB_WORKER_SECRET": "s",
                "DATABASE_URL": empty_db,
                "SUPABASE_URL": httpserver.url_for("/").rstrip("/"),
                "SUPABASE_SERVICE_ROLE_KEY": KEY,
            },
            monkeypatch,
        )
        conn.execute(
            "update jobs set priority = -1 where type = 'ingest_file' and status = 'queued'"
            " and input ->> 'file_id' = any(%s)",
            (ids,),
        )
        app.post(
            "/",
            json={"max_jobs": 20, "job_types": ["ingest_file"]},
            headers={"x-job-worker-secret": "s"},
        )
        statuses = conn.execute(
            "select status, count(*) as n from ingest_files where id::text = any(%s)"
            " group by status",
            (ids,),
        ).fetchall()
        assert statuses == [{"status": "processed", "n": 20}]
