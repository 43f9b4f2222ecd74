"""A handler can do anything; its job's outcome is always stored and never sinks its batch.

Issue 9, breaks 1, 2, 3 and 12: results PostgreSQL cannot store, BaseException from handlers,
handlers blocked in a C call, handlers that swallow their timeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import tests.handlers.hostile as hostile
from jobqueue.tools.serving import serve
from jobqueue.worker.registry import registry
from tests.support.functions import client
from tests.support.queue import Conn, claim, insert_job, job

SECRET = "worker-secret-value-1234"
HEADERS = {"x-job-worker-secret": SECRET}
HOSTILE_TYPES = (
    "poison_output",
    "poison_error",
    "escape",
    "blocked",
    "stubborn",
    "gil_hold",
    "recorded",
    "forks",
    "exits",
)


@pytest.fixture(autouse=True)
def _hostile_handlers() -> Iterator[None]:
    """Registered by importing the module; removed afterwards so no other test sees them."""
    import importlib

    for job_type in HOSTILE_TYPES:
        registry.unregister(job_type)
    importlib.reload(hostile)
    yield
    for job_type in HOSTILE_TYPES:
        registry.unregister(job_type)


@pytest.fixture(params=["postgres", "rest"])
def worker(request: pytest.FixtureRequest, db: str, httpserver: Any, monkeypatch: Any) -> Any:
    from tests.support import postgrest

    env = {"JOB_WORKER_SECRET": SECRET}
    if request.param == "postgres":
        env["DATABASE_URL"] = db
    else:
        env["SUPABASE_URL"] = postgrest.install(httpserver, db, "service-key")
        env["SUPABASE_SERVICE_ROLE_KEY"] = "service-key"
    return client("worker_pull", env, monkeypatch)


def pull(app: Any, **body: Any) -> Any:
    response = app.post("/", json=body, headers=HEADERS)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_poison_results_fail_only_their_own_job(worker: Any, conn: Conn) -> None:
    """Each poison kind sits between healthy jobs in one batch: the healthy ones are done,
    each poison job failed for good with a reason, and the call answers 200."""
    healthy_before = [insert_job(conn, "echo", {"n": i}) for i in range(3)]
    poison = {
        kind: insert_job(conn, "poison_output", {"kind": kind}) for kind in hostile.POISON_OUTPUTS
    }
    bad_error = insert_job(conn, "poison_error", {"kind": "bad_text"})
    healthy_after = [insert_job(conn, "echo", {"n": i}) for i in range(3)]
    pull(worker, max_jobs=1)  # teaches the instance that jobs are fast, so the next is a batch
    answer = pull(worker, max_jobs=100)
    assert answer["queue_empty"] is True
    for job_id in healthy_before + healthy_after:
        assert job(conn, job_id)["status"] == "done"
    for kind, job_id in poison.items():
        row = job(conn, job_id)
        assert (row["status"], row["attempts"]) == ("failed", 1), kind
        assert "cannot be stored" in row["error"] or "could not be stored" in row["error"], kind
    row = job(conn, bad_error)
    assert row["status"] == "queued" and row["attempts"] == 1
    assert "\\u0000" in row["error"] and "\\ud800" in row["error"]


def test_a_retry_asked_for_far_ahead_is_capped_not_fatal(worker: Any, conn: Conn) -> None:
    far = insert_job(conn, "poison_error", {"kind": "retry_far"})
    whenever = insert_job(conn, "poison_error", {"kind": "retry_nan"})
    healthy = insert_job(conn, "echo")
    pull(worker, max_jobs=10)
    assert job(conn, healthy)["status"] == "done"
    delays = conn.execute(
        "select id, extract(epoch from run_at - now()) as wait from jobs where id = any(%s)",
        ([far, whenever],),
    ).fetchall()
    wait = {row["id"]: float(row["wait"]) for row in delays}
    assert 3590 < wait[far] <= 3600, "capped at JOB_MAX_RETRY_DELAY_SECONDS (an hour)"
    assert 0 < wait[whenever] < 3600, "not a number: the usual backoff"


@pytest.mark.parametrize("kind", ["exit", "keyboard", "generator_exit", "bare"])
def test_base_exceptions_end_the_attempt_not_the_request(
    worker: Any, conn: Conn, kind: str
) -> None:
    escaping = insert_job(conn, "escape", {"kind": kind})
    healthy = insert_job(conn, "echo")
    answer = pull(worker, max_jobs=10)
    assert {j["id"]: j["status"] for j in answer["jobs"]} == {escaping: "queued", healthy: "done"}
    assert job(conn, escaping)["error"].split(":")[0] in (
        "SystemExit",
        "KeyboardInterrupt",
        "GeneratorExit",
        "_Bare",
    )


def test_a_handler_that_swallows_its_timeout_still_timed_out(worker: Any, conn: Conn) -> None:
    job_id = insert_job(conn, "stubborn")
    [reported] = pull(worker)["jobs"]
    assert reported["status"] == "queued" and "time limit" in reported["error"]
    assert job(conn, job_id)["output"] is None


def test_a_handler_blocked_in_a_c_call_keeps_its_lease(
    db: str, conn: Conn, monkeypatch: Any
) -> None:
    """A 2 s lease, a handler asleep in one 4.5 s C call: nobody else may claim the job while
    it runs; within its own limit (600 s) it finishes, its lease kept by the guardian."""
    env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db, "JOB_LEASE_SECONDS": "2"}
    app = client("worker_pull", env, monkeypatch)
    job_id = insert_job(conn, "blocked", {"seconds": 4.5})
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(pull(app)))
    thread.start()
    while job(conn, job_id)["status"] != "running":
        time.sleep(0.01)
    stolen: list[Any] = []
    started = time.monotonic()
    while thread.is_alive() and time.monotonic() - started < 10:
        stolen += claim(conn, worker="thief", lease=60)
        time.sleep(0.2)
    thread.join(10)
    assert stolen == [], "another worker claimed a job that was still running"
    assert time.monotonic() - started >= 4.0
    [reported] = answers[0]["jobs"]
    assert reported["id"] == job_id and reported["status"] == "done", reported
    assert job(conn, job_id)["attempts"] == 1 and job(conn, job_id)["output"] == "woke"


def test_sys_exit_in_a_handler_leaves_the_server_serving(db: str, tmp_path: Any) -> None:
    """The real server (functions-framework, gunicorn): sys.exit(3) in a handler used to
    shut it down for good."""
    env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": db,
        "JOB_HANDLER_MODULES": "tests.handlers.hostile",
    }
    from tests.support.pg import connect

    with serve("worker_pull", env, tmp_path) as served, connect(db) as conn:
        exiting = insert_job(conn, "escape", {"kind": "exit"})
        first = httpx.post(served.url, json={}, headers=HEADERS, timeout=30)
        assert first.status_code == 200
        assert first.json()["jobs"][0]["id"] == exiting
        healthy = insert_job(conn, "echo")
        second = httpx.post(served.url, json={}, headers=HEADERS, timeout=30)
        assert second.status_code == 200 and second.json()["jobs"][0]["id"] == healthy
        assert job(conn, healthy)["status"] == "done"
        assert all(json.loads(line) for line in served.output().splitlines() if line)
