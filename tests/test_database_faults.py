"""worker_pull when its database stops, freezes or restarts (issue 9, break 7), on a private
cluster the test owns; never the shared server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobqueue.tools.migrate import apply_migrations
from tests.support.functions import client
from tests.support.pg import connect
from tests.support.private_pg import Cluster, private_cluster
from tests.support.queue import insert_job, job

SECRET = "worker-secret-value-1234"
HEADERS = {"x-job-worker-secret": SECRET}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with private_cluster() as started:
        apply_migrations(started.dsn)
        yield started


def test_a_frozen_database_is_a_bounded_503_then_recovers(
    cluster: Cluster, monkeypatch: Any
) -> None:
    env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": cluster.dsn,
        "DATABASE_CALL_TIMEOUT_SECONDS": "2",
    }
    app = client("worker_pull", env, monkeypatch)
    assert app.post("/", json={}, headers=HEADERS).status_code == 200  # a warm connection
    with cluster.frozen():
        started = time.monotonic()
        response = app.post("/", json={}, headers=HEADERS)
        took = time.monotonic() - started
    assert response.status_code == 503 and response.get_json()["error"] == "unavailable"
    assert took < 2 + 5 + 1, "the call timeout, and at most one connect timeout, bound it"
    with connect(cluster.dsn) as conn:
        job_id = insert_job(conn, "echo")
        assert app.post("/", json={}, headers=HEADERS).status_code == 200
        assert job(conn, job_id)["status"] == "done"


def test_a_restarted_database_is_reconnected(cluster: Cluster, monkeypatch: Any) -> None:
    app = client(
        "worker_pull", {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": cluster.dsn}, monkeypatch
    )
    assert app.post("/", json={}, headers=HEADERS).status_code == 200
    cluster.stop()
    try:
        response = app.post("/", json={}, headers=HEADERS)
        assert response.status_code == 503 and response.get_json()["error"] == "unavailable"
    finally:
        cluster.start()
    with connect(cluster.dsn) as conn:
        job_id = insert_job(conn, "echo")
    assert app.post("/", json={}, headers=HEADERS).status_code == 200
    with connect(cluster.dsn) as conn:
        assert job(conn, job_id)["status"] == "done"


def test_claims_of_a_call_that_lost_the_database_are_given_up_once_it_answers(
    cluster: Cluster, monkeypatch: Any
) -> None:
    """The database freezes while a handler runs: the call answers 503, and the claim it held
    is not left running for a whole lease: the guardian expires it as soon as the database
    answers again (no job left claimed by this call)."""
    import threading

    env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": cluster.dsn,
        "DATABASE_CALL_TIMEOUT_SECONDS": "2",
        "JOB_LEASE_SECONDS": "300",
    }
    app = client("worker_pull", env, monkeypatch)
    with connect(cluster.dsn) as conn:
        job_id = insert_job(conn, "echo", {"sleep_ms": 1500})
    answers: list[int] = []
    call = threading.Thread(
        target=lambda: answers.append(app.post("/", json={}, headers=HEADERS).status_code)
    )
    call.start()
    time.sleep(0.6)  # the handler is running
    with cluster.frozen():
        call.join()
    assert answers == [503]
    deadline = time.monotonic() + 15
    row: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        with connect(cluster.dsn) as conn:
            row = conn.execute(
                "select status, lease_expires_at <= now() + interval '2 seconds' as soon"
                " from jobs where id = %s",
                (job_id,),
            ).fetchone()
        if row and (row["status"] != "running" or row["soon"]):
            break
        time.sleep(0.3)
    assert row is not None and (row["status"] != "running" or row["soon"]), row
