"""The operator CLI on a real database: the README's first command is built from it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobqueue.cli import main
from tests.support import pg
from tests.support.queue import Conn, job


def run(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> Any:
    assert main(["--database-url", db, *args]) == 0
    out = capsys.readouterr().out
    # Job log lines (one JSON object per line) may come first; the answer is indented JSON.
    return json.loads(out[out.rfind("\n{\n") + 1 :])


def test_migrate_enqueue_work_status(
    capsys: pytest.CaptureFixture[str], pg_server: str, template_db: str
) -> None:
    name = pg.unique_name("jobqueue_cli")
    db = pg.create_database(pg_server, name)
    try:
        assert len(run(capsys, db, "migrate")["applied"]) >= 3
        assert run(capsys, db, "migrate") == {"applied": []}
        ids = run(capsys, db, "enqueue", "echo", '{"n": 1}', "--count", "3")["enqueued"]
        assert len(ids) == 3
        assert run(capsys, db, "work") == {"processed": 3, "by_status": {"done": 3}}
        status = run(capsys, db, "status")
        assert (status["done"], status["queued"]) == (3, 0)
    finally:
        pg.drop_database(pg_server, name)


def test_cancel_and_retry(capsys: pytest.CaptureFixture[str], db: str, conn: Conn) -> None:
    [job_id] = run(capsys, db, "enqueue", "echo")["enqueued"]
    assert run(capsys, db, "cancel", str(job_id)) == {"id": job_id, "changed": True}
    assert job(conn, job_id)["status"] == "cancelled"
    assert run(capsys, db, "retry", str(job_id)) == {"id": job_id, "changed": True}
    assert job(conn, job_id)["status"] == "queued"


def test_bad_input_is_a_clear_error(capsys: pytest.CaptureFixture[str], db: str) -> None:
    assert main(["--database-url", db, "enqueue", "echo", "{not json"]) == 1
    assert "jobqueue enqueue:" in capsys.readouterr().err
