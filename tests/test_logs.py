"""Every log line is one JSON object with severity, level, an RFC 3339 time and the request's
ids; refusals say why; an unexpected error's traceback is logged, never answered; no secret
and no job input appears (issue 11)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.support.functions import client, load_module
from tests.support.queue import Conn, insert_job

WORKER_SECRET = "worker-secret-logs-123"
CRON_SECRET = "cron-secret-logs-456"
INPUT_MARKER = "private-job-input-789"


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    parsed = [json.loads(line) for line in out.splitlines() if line.strip()]
    for line in parsed:
        assert line["severity"] == line["level"]
        assert datetime.fromisoformat(line["time"].replace("Z", "+00:00")).tzinfo is not None
        assert line["time"].endswith("Z") and isinstance(line["message"], str)
    assert WORKER_SECRET not in out and CRON_SECRET not in out and INPUT_MARKER not in out
    return parsed


def test_worker_call_refusal_and_503_are_logged_with_reasons_and_trace(
    db: str, conn: Conn, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    app = client(
        "worker_pull", {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}, monkeypatch
    )
    insert_job(conn, "echo", {"secret_stuff": INPUT_MARKER})
    trace = {"X-Cloud-Trace-Context": "0123456789abcdef0123456789abcdef/1;o=1"}
    app.post("/", json={}, headers={"x-job-worker-secret": WORKER_SECRET, **trace})
    app.post("/", json={}, headers={"x-job-worker-secret": "wrong", **trace})
    logged = lines(capsys)
    [finished] = [line for line in logged if line["message"] == "job finished"]
    assert finished["level"] == "INFO" and finished["outcome"] == "done"
    assert finished["logging.googleapis.com/trace"] == (
        "projects/my-project/traces/0123456789abcdef0123456789abcdef"
    )
    [refused] = [line for line in logged if line["message"] == "worker_pull answered 401"]
    assert refused["level"] == "WARNING" and "x-job-worker-secret" in refused["reason"]

    broken = client(
        "worker_pull",
        {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": "postgresql://u@127.0.0.1:1/x"},
        monkeypatch,
    )
    assert (
        broken.post("/", json={}, headers={"x-job-worker-secret": WORKER_SECRET}).status_code == 503
    )
    [unavailable] = [
        line for line in lines(capsys) if line["message"] == "worker_pull answered 503"
    ]
    assert unavailable["level"] == "ERROR" and "unreachable" in unavailable["reason"]


def test_a_500_logs_its_traceback_and_answers_none(
    httpserver: HTTPServer, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PostgREST error the store does not expect: the caller gets a bare 500."""
    httpserver.expect_request("/rest/v1/rpc/claim_jobs").respond_with_json(
        {"code": "XX000", "message": "internal boom", "details": None, "hint": None}, status=500
    )
    env = {
        "JOB_WORKER_SECRET": WORKER_SECRET,
        "SUPABASE_URL": httpserver.url_for("/"),
        "SUPABASE_SERVICE_ROLE_KEY": "service-key-logs",
    }
    app = client("worker_pull", env, monkeypatch)
    response = app.post("/", json={}, headers={"x-job-worker-secret": WORKER_SECRET})
    assert response.status_code == 500
    assert "Traceback" not in response.get_data(as_text=True)
    logged = lines(capsys)
    [failure] = [line for line in logged if "stack_trace" in line]
    assert failure["level"] == "ERROR" and "Traceback" in failure["stack_trace"]
    assert any(line["message"] == "worker_pull answered 500" for line in logged)


def test_tick_lines_carry_the_lambda_request_id(
    monkeypatch: Any, capsys: pytest.CaptureFixture[str], httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/worker").respond_with_json(
        {"processed": 0, "jobs": [], "queue_empty": True}
    )
    env = {
        "CRON_SECRET": CRON_SECRET,
        "JOB_WORKER_SECRET": WORKER_SECRET,
        "WORKER_PULL_URL": httpserver.url_for("/worker"),
    }
    module = load_module("cron_tick", env, monkeypatch)
    context = SimpleNamespace(aws_request_id="req-abc-123")
    module.lambda_handler({"source": "aws.scheduler", "detail": {"iterations": 1}}, context)
    with pytest.raises(Exception, match="bad_request"):
        module.lambda_handler({"iterations": "many"}, context)
    logged = lines(capsys)
    [tick] = [line for line in logged if line["message"] == "cron tick finished"]
    assert tick["request_id"] == "req-abc-123" and tick["stopped"] == "queue_empty"
    [refused] = [line for line in logged if "direct invocation failed" in line["message"]]
    assert refused["request_id"] == "req-abc-123" and "iterations" in refused["reason"]


def test_library_records_are_written_as_json_lines(
    monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    load_module("cron_tick", {"CRON_SECRET": CRON_SECRET}, monkeypatch)
    logging.getLogger("httpx").warning("a library speaks")
    [line] = [line for line in lines(capsys) if line["message"] == "a library speaks"]
    assert line["logger"] == "httpx" and line["level"] == "WARNING"


def test_a_handler_logs_through_its_context_and_calls_sql_functions(
    db: str, conn: Conn, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The narrow handler API: ctx.log writes a line quoting the job, never its input;
    ctx.call reaches a SQL function with named arguments (an object as jsonb)."""
    from jobqueue.worker.registry import registry

    def handler(input: Any, ctx: Any) -> Any:
        ctx.log("made a follow-up", width=320)
        [row] = ctx.call("enqueue_job", p_type="follow_up", p_input={"from": ctx.job_id})
        return {"follow_up": row["value"]}

    registry.register("test_ctx")(handler)
    try:
        app = client(
            "worker_pull", {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}, monkeypatch
        )
        job_id = insert_job(conn, "test_ctx", {"secret_stuff": INPUT_MARKER})
        [reported] = app.post(
            "/", json={"job_types": ["test_ctx"]}, headers={"x-job-worker-secret": WORKER_SECRET}
        ).get_json()["jobs"]
    finally:
        registry.unregister("test_ctx")
    assert reported["status"] == "done", reported["error"]
    follow_up = conn.execute("select type, input from jobs where type = 'follow_up'").fetchone()
    assert follow_up == {"type": "follow_up", "input": {"from": job_id}}
    [line] = [line for line in lines(capsys) if line["message"] == "made a follow-up"]
    assert (line["job_id"], line["type"], line["attempt"], line["width"]) == (
        job_id,
        "test_ctx",
        1,
        320,
    )


def test_lambda_lines_carry_powertools_fields_and_a_failed_job_its_reason(
    db: str, conn: Conn, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=1")
    module = load_module("worker_pull", {"JOB_WORKER_SECRET": "s", "DATABASE_URL": db}, monkeypatch)
    import jobqueue.http.lambda_adapter as adapter

    monkeypatch.setattr(adapter, "_cold", True)
    insert_job(conn, "echo", {"fail_permanently": "the reason", "secret_input": "never-logged"})
    context = SimpleNamespace(aws_request_id="req-1", function_name="worker-pull-fn")
    event = {
        "version": "2.0",
        "requestContext": {"http": {"method": "POST"}},
        "headers": {"x-job-worker-secret": "s"},
        "body": "{}",
    }
    module.lambda_handler(event, context)
    module.lambda_handler(event, SimpleNamespace(aws_request_id="req-2"))
    logged = lines(capsys)
    [finished] = [line for line in logged if line["message"] == "job finished"]
    assert finished["service"] == "worker-pull-fn" and finished["cold_start"] is True
    assert finished["function_request_id"] == "req-1" == finished["request_id"]
    assert finished["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert finished["outcome"] == "failed" and "the reason" in finished["error"]
    assert "never-logged" not in json.dumps(logged)
