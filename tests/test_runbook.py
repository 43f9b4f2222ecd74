"""Every SQL snippet of docs/runbook.md runs, in order, on a migrated database with pg_cron,
pg_net and Vault (issue 11: the runbook's snippets run in CI)."""

from __future__ import annotations

import re

import psycopg

from jobqueue.tools.serving import ROOT
from tests.support import pg
from tests.support.queue import claim, insert_job

RUNBOOK = ROOT / "docs" / "runbook.md"


def snippets() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), re.DOTALL)


def test_every_sql_snippet_of_the_runbook_runs(cron_db: str) -> None:
    dsn = cron_db
    found = snippets()
    assert len(found) >= 12
    with pg.connect(dsn) as conn:
        # Something for every query to find: a failed job, a stuck one, an attempt.
        failed = insert_job(conn, "echo", max_attempts=1)
        claim(conn)
        conn.execute("select fail_job(%s, 1, 'boom', true)", (failed,))
        insert_job(conn, "echo")
        claim(conn)
        conn.execute(
            "update jobs set lease_expires_at = now() - interval '1 s' where status = 'running'"
        )
        for snippet in found:
            try:
                conn.execute(snippet)
            except psycopg.Error as exc:
                raise AssertionError(f"runbook snippet failed: {exc}\n{snippet}") from None
        status = conn.execute("select problems from job_processing_status").fetchone()
    assert isinstance(status["problems"], list)
