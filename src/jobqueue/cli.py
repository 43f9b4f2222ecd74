"""``jobqueue``: the operator's command line over the same SQL API the functions use.

    jobqueue migrate                     apply supabase/migrations/ (recorded as the CLI does)
    jobqueue enqueue echo '{"a": 1}'     add jobs
    jobqueue work                        process jobs here until the queue is empty
    jobqueue status                      the job_processing_status view
    jobqueue retry ID | cancel ID        operator actions

The database is ``--database-url`` or ``DATABASE_URL`` (default: the local server).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobqueue", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", LOCAL))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the migrations not yet applied")
    enqueue = commands.add_parser("enqueue", help="add jobs")
    enqueue.add_argument("type")
    enqueue.add_argument("input", nargs="?", default="{}", help="the job's input as JSON")
    enqueue.add_argument("--count", type=int, default=1)
    enqueue.add_argument("--priority", type=int, default=0)
    work = commands.add_parser("work", help="process jobs until the queue is empty")
    work.add_argument("--max-jobs", type=int, default=100, help="jobs per call (1..100)")
    commands.add_parser("status", help="show job_processing_status")
    for action in ("retry", "cancel"):
        commands.add_parser(action, help=f"{action} a job").add_argument("id", type=int)
    args = parser.parse_args(argv)
    try:
        result = _run(args)
    except (psycopg.Error, ValueError) as exc:
        print(f"jobqueue {args.command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


def _run(args: argparse.Namespace) -> Any:
    dsn: str = args.database_url
    if args.command == "migrate":
        from jobqueue.migrate import apply_migrations

        return {"applied": apply_migrations(dsn)}
    if args.command == "work":
        return _work(dsn, args.max_jobs)
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        if args.command == "enqueue":
            payload = Jsonb(json.loads(args.input))
            rows = conn.execute(
                "select public.enqueue_job(%s, %s, %s) as id from generate_series(1, %s)",
                (args.type, payload, args.priority, args.count),
            ).fetchall()
            return {"enqueued": [row["id"] for row in rows]}
        if args.command == "status":
            return conn.execute("select * from public.job_processing_status").fetchone()
        function = "retry_job" if args.command == "retry" else "cancel_job"
        row = conn.execute(f"select public.{function}(%s) as changed", (args.id,)).fetchone()
        return {"id": args.id, "changed": bool(row and row["changed"])}


def _work(dsn: str, max_jobs: int) -> dict[str, Any]:
    """The worker_pull service itself, called in-process until a claim finds the queue empty."""
    from pydantic import SecretStr

    from jobqueue.handlers import load_handlers
    from jobqueue.settings import WorkerSettings
    from jobqueue.store.postgres import PostgresStore
    from jobqueue.worker.models import PullRequest
    from jobqueue.worker.registry import registry
    from jobqueue.worker.service import WorkerService

    load_handlers()
    settings = WorkerSettings(job_worker_secret=SecretStr("local"), database_url=SecretStr(dsn))
    service = WorkerService(PostgresStore(dsn), registry, settings)
    totals: dict[str, int] = {}
    try:
        while True:
            answer = service.pull(PullRequest(max_jobs=max_jobs))
            for job in answer["jobs"]:
                totals[job["status"]] = totals.get(job["status"], 0) + 1
            if answer["queue_empty"] or not answer["processed"]:
                return {"processed": sum(totals.values()), "by_status": totals}
    finally:
        service.close()
