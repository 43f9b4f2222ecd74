"""worker_pull's HTTP contract: status codes, errors, Lambda events, logs."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from jobqueue.tools.serving import free_port, serve
from tests.support import pgbouncer
from tests.support.functions import client, load_module
from tests.support.queue import Conn, insert_job, job

SECRET = "worker-secret-value-1234"
HEADERS = {"x-job-worker-secret": SECRET}


@pytest.fixture
def env(db: str) -> dict[str, str]:
    return {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}


def post(app: Any, body: Any, headers: dict[str, str] = HEADERS) -> Any:
    return app.post(
        "/", data=body if isinstance(body, (bytes, str)) else json.dumps(body), headers=headers
    )


def test_get_is_a_health_check_that_reveals_nothing(env: dict[str, str], monkeypatch: Any) -> None:
    response = client("worker_pull", env, monkeypatch).get("/")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"
    assert SECRET not in response.get_data(as_text=True)


def test_health_check_works_unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    response = client("worker_pull", {}, monkeypatch).get("/")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "function": "worker_pull", "configured": False}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(env: dict[str, str], monkeypatch: Any, method: str) -> None:
    response = client("worker_pull", env, monkeypatch).open("/", method=method, headers=HEADERS)
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("drop", "extra", "named"),
    [
        ("JOB_WORKER_SECRET", {}, "JOB_WORKER_SECRET"),
        ("DATABASE_URL", {}, "DATABASE_URL"),
        (None, {"JOB_LEASE_SECONDS": "soon"}, "JOB_LEASE_SECONDS"),
        (None, {"JOB_WORKER_SECRET": ""}, "JOB_WORKER_SECRET"),
    ],
)
def test_missing_or_invalid_configuration_is_503_naming_the_variable(
    env: dict[str, str], monkeypatch: Any, drop: str | None, extra: dict[str, str], named: str
) -> None:
    settings = {k: v for k, v in env.items() if k != drop} | extra
    response = post(client("worker_pull", settings, monkeypatch), {})
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "not_configured" and named in body["message"]
    assert SECRET not in response.get_data(as_text=True)


def test_configuration_is_checked_before_the_secret(monkeypatch: Any) -> None:
    response = post(client("worker_pull", {}, monkeypatch), {}, headers={})
    assert response.status_code == 503


@pytest.mark.parametrize(
    "headers", [{}, {"x-job-worker-secret": "wrong"}, {"x-job-worker-secret": SECRET + "x"}]
)
def test_missing_or_wrong_secret_is_401(
    env: dict[str, str], monkeypatch: Any, conn: Conn, headers: dict[str, str]
) -> None:
    job_id = insert_job(conn)
    response = post(client("worker_pull", env, monkeypatch), {}, headers=headers)
    assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
    assert job(conn, job_id)["status"] == "queued"


def test_body_over_one_mib_is_413(env: dict[str, str], monkeypatch: Any) -> None:
    body = json.dumps({"job_types": ["x" * (1024 * 1024)]})
    response = post(client("worker_pull", env, monkeypatch), body)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"[]",
        b'"x"',
        b"{not json",
        b"3",
        {"max_jobs": "5"},
        {"max_jobs": 5.0},
        {"max_jobs": True},
        {"max_jobs": 0},
        {"max_jobs": 101},
        {"surprise": 1},
        {"job_types": "echo"},
        {"job_types": [1]},
        {"time_budget_ms": 0},
        {"time_budget_ms": 900_001},
        {"time_budget_ms": "100"},
    ],
)
def test_bad_bodies_are_400_and_touch_nothing(
    env: dict[str, str], monkeypatch: Any, conn: Conn, body: Any
) -> None:
    job_id = insert_job(conn)
    response = post(client("worker_pull", env, monkeypatch), body)
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "bad_request" and answer["message"]
    assert "Traceback" not in answer["message"]
    assert job(conn, job_id)["status"] == "queued"


def test_unreachable_database_is_503_and_claims_nothing(monkeypatch: Any) -> None:
    env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/postgres",
    }
    response = post(client("worker_pull", env, monkeypatch), {})
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "unavailable" and "hunter2" not in response.get_data(as_text=True)


def _v1(
    method: str, body: str | None = None, headers: dict[str, str] | None = None, b64: bool = False
) -> dict[str, Any]:
    return {
        "httpMethod": method,
        "path": "/",
        "headers": headers or {},
        "body": body,
        "isBase64Encoded": b64,
        "requestContext": {"stage": "prod"},
    }


def _v2(
    method: str, body: str | None = None, headers: dict[str, str] | None = None, b64: bool = False
) -> dict[str, Any]:
    # HTTP API v2 and Lambda Function URL events share this shape.
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": headers or {},
        "body": body,
        "isBase64Encoded": b64,
        "requestContext": {"http": {"method": method, "path": "/"}},
    }


@pytest.mark.parametrize("event", [_v1, _v2])
def test_lambda_events_follow_the_same_rules(
    env: dict[str, str], monkeypatch: Any, conn: Conn, event: Any
) -> None:
    handler = load_module("worker_pull", env, monkeypatch).lambda_handler
    health = handler(event("GET"), None)
    assert health["statusCode"] == 200 and json.loads(health["body"])["status"] == "ok"
    assert handler(event("POST", "{}"), None)["statusCode"] == 401
    assert (
        handler(event("DELETE", None, {"X-Job-Worker-Secret": SECRET}), None)["statusCode"] == 405
    )
    assert handler(event("POST", "[]", {"X-Job-Worker-Secret": SECRET}), None)["statusCode"] == 400
    job_id = insert_job(conn, "echo", {"via": "lambda"})
    body = base64.b64encode(b'{"max_jobs": 2}').decode()
    answer = handler(event("POST", body, {"X-Job-Worker-Secret": SECRET}, b64=True), None)
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == "application/json"
    result = json.loads(answer["body"])
    assert [j["id"] for j in result["jobs"]] == [job_id] and result["queue_empty"] is True
    assert job(conn, job_id)["output"] == {"via": "lambda"}


def test_served_function_logs_one_json_line_per_job_and_no_secret(
    db: str, conn: Conn, tmp_path: Path
) -> None:
    insert_job(conn, "echo", {"private": "customer-data-xyz"})
    insert_job(conn, "echo", {"fail": "nope"})
    env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}
    with serve("worker_pull", env, tmp_path) as served:
        response = httpx.post(served.url, json={"max_jobs": 5}, headers=HEADERS, timeout=30)
        assert response.status_code == 200 and response.json()["processed"] == 2
        assert (
            httpx.post(served.url, json={}, headers={"x-job-worker-secret": "bad"}).status_code
            == 401
        )
        output = served.output()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    jobs = [line for line in lines if line["message"] == "job finished"]
    assert [(j["outcome"], j["attempt"]) for j in jobs] == [("done", 1), ("queued", 1)]
    assert all({"job_id", "type", "duration_ms", "severity"} <= set(j) for j in jobs)
    assert SECRET not in output and "customer-data-xyz" not in output


def test_concurrent_calls_to_one_served_instance_share_nothing_but_the_queue(
    db: str, conn: Conn, tmp_path: Path
) -> None:
    conn.execute("insert into jobs (type) select 'echo' from generate_series(1, 400)")
    env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}
    with serve("worker_pull", env, tmp_path) as served:

        def drain(_: int) -> list[int]:
            ids: list[int] = []
            with httpx.Client(base_url=served.url, headers=HEADERS, timeout=30) as http:
                while True:
                    answer = http.post("/", json={"max_jobs": 20}).json()
                    ids += [j["id"] for j in answer["jobs"] if j["status"] == "done"]
                    if answer["queue_empty"]:
                        return ids

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(drain, range(4)))
    every = [job_id for ids in results for job_id in ids]
    assert len(every) == 400 and len(set(every)) == 400
    assert (
        conn.execute("select count(*) as n from jobs where status = 'done'").fetchone()["n"] == 400
    )


def test_safe_behind_a_transaction_mode_pooler(db: str, conn: Conn, tmp_path: Path) -> None:
    """Supabase's pooler on port 6543 is transaction-mode PgBouncer: consecutive statements of
    one client land on different server connections, so a server-side prepared statement made
    on one is missing on the next. Four callers share two server connections here."""
    conn.execute("insert into jobs (type) select 'echo' from generate_series(1, 600)")
    with pgbouncer.transaction_pooler(db, pool_size=2) as pooled:
        env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": pooled}
        with serve("worker_pull", env, tmp_path) as served:

            def drain(_: int) -> list[int]:
                statuses = []
                with httpx.Client(base_url=served.url, headers=HEADERS, timeout=30) as http:
                    while True:
                        response = http.post("/", json={"max_jobs": 7})
                        assert response.status_code == 200, response.text
                        answer = response.json()
                        statuses += [j["status"] for j in answer["jobs"]]
                        if answer["queue_empty"]:
                            return statuses

            with ThreadPoolExecutor(4) as pool:
                results = [s for statuses in pool.map(drain, range(4)) for s in statuses]
    assert len(results) == 600 and set(results) == {"done"}


@pytest.mark.parametrize("backend", ["postgres", "rest"])
def test_unmigrated_database_is_503_saying_what_to_do(
    pg_server: str, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer, backend: str
) -> None:
    from tests.support import pg, postgrest

    name = pg.unique_name("jobqueue_unmigrated")
    dsn = pg.create_database(pg_server, name)
    env = {"JOB_WORKER_SECRET": SECRET}
    if backend == "postgres":
        env["DATABASE_URL"] = dsn
    else:
        env["SUPABASE_URL"] = postgrest.install(httpserver, dsn, "key")
        env["SUPABASE_SERVICE_ROLE_KEY"] = "key"
    try:
        response = post(client("worker_pull", env, monkeypatch), {})
        assert response.status_code == 503
        assert "apply supabase/migrations" in response.get_json()["message"]
    finally:
        from tests.support.functions import close_all

        close_all()
        pg.drop_database(pg_server, name)


def test_an_unexpected_failure_is_json_500_without_a_trace(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, conn: Conn
) -> None:
    conn.execute("alter table job_attempts rename to job_attempts_gone")  # finish_jobs breaks
    insert_job(conn)
    response = post(client("worker_pull", env, monkeypatch), {})
    assert response.status_code == 500 and response.is_json
    assert response.get_json() == {
        "error": "internal",
        "message": "worker_pull failed; its log says why",
    }
