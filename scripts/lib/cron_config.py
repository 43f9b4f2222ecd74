"""setup-cron-config.sh's work: store the cron_tick URL and secret where trigger_job_worker()
reads them, schedule it, and print job_processing_status.

Values travel as bound parameters (psycopg's extended protocol), never inside the statement's
text, so neither pg_stat_activity nor a statement log shows them. (With log_statement = 'all'
PostgreSQL still logs bound values as "parameters: $1 = ..." unless log_parameter_max_length is
0; docs/reliability.md says so.) `.env.local` is read by the CLI's own reader.
"""

from __future__ import annotations

import sys

import psycopg

from jobqueue.tools.cli.app import setting

PROG = "setup-cron-config.sh"


def main() -> int:
    values = {name: setting(name) for name in ("DATABASE_URL", "CRON_TICK_URL", "CRON_SECRET")}
    for name, value in values.items():
        if not value:
            print(f"{PROG}: {name} is not set", file=sys.stderr)
            return 2
    try:
        conn = psycopg.connect(str(values["DATABASE_URL"]), autocommit=True, connect_timeout=15)
    except psycopg.ProgrammingError:
        print(f"{PROG}: DATABASE_URL is not a PostgreSQL connection string", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(f"{PROG}: cannot connect to the database: {str(exc).strip()}", file=sys.stderr)
        return 1
    with conn:
        try:
            for name in ("cron_tick_url", "cron_secret"):
                [where] = conn.execute(
                    "select public.set_job_worker_config(%s, %s)",
                    (name, values[name.upper()]),
                ).fetchone() or [None]
                print(f"{name} stored in {where}")
            conn.execute("select public.schedule_job_worker()")
            cursor = conn.execute("select * from public.job_processing_status")
            row = cursor.fetchone() or ()
            for column, value in zip([c.name for c in cursor.description or []], row, strict=True):
                print(f"{column:<20}| {value}")
            [client] = conn.execute(
                "select coalesce(public.job_worker_http_client(), '')"
            ).fetchone() or [""]
        except psycopg.Error as exc:
            print(f"{PROG}: {exc.diag.message_primary or type(exc).__name__}", file=sys.stderr)
            if exc.diag.message_hint:
                print(f"HINT: {exc.diag.message_hint}", file=sys.stderr)
            return 1
    if not client:
        print(
            f"{PROG}: WARNING: the database has no HTTP client, so nothing can call cron_tick: "
            "enable pg_net (create extension pg_net; on Supabase: Database > Extensions), or the "
            "http extension, then run this again",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
