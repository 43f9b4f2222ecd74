"""cron_tick against a real local HTTP server standing in for worker_pull."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jobqueue.tools.serving import free_port
from tests.support.functions import client, load_module

CRON_SECRET = "cron-secret-abcdef"
WORKER_SECRET = "worker-secret-123456"


class FakeWorker:
    """Answers like worker_pull from a script of replies; records what it was sent."""

    def __init__(self) -> None:
        self.replies: list[Any] = []
        self.default: Any = {
            "processed": 1,
            "jobs": [{"id": 1, "status": "done"}],
            "queue_empty": False,
        }
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.calls.append(
                {
                    "at": time.monotonic(),
                    "headers": dict(request.headers),
                    "body": request.get_data(as_text=True),
                    # Which connection: the caller's port.
                    "port": request.environ.get("REMOTE_PORT"),
                }
            )
            reply = self.replies.pop(0) if self.replies else self.default
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if isinstance(reply, tuple) and reply[0] == "sleep":
                time.sleep(reply[1])
                reply = reply[2]
            if isinstance(reply, int):
                return Response("{}", status=reply, content_type="application/json")
            return Response(json.dumps(reply), content_type="application/json")
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture(scope="module")
def worker_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def worker(worker_server: HTTPServer) -> Iterator[FakeWorker]:
    fake = FakeWorker()
    worker_server.expect_request("/worker", method="POST").respond_with_handler(fake)
    yield fake
    worker_server.clear()


@pytest.fixture
def env(worker_server: HTTPServer) -> dict[str, str]:
    return {
        "CRON_SECRET": CRON_SECRET,
        "JOB_WORKER_SECRET": WORKER_SECRET,
        "WORKER_PULL_URL": worker_server.url_for("/worker"),
    }


def tick(
    env: dict[str, str], monkeypatch: Any, body: Any, headers: dict[str, str] | None = None
) -> Any:
    app = client("cron_tick", env, monkeypatch)
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return app.post(
        "/", data=data, headers=headers if headers is not None else {"x-cron-secret": CRON_SECRET}
    )


def test_calls_worker_pull_iterations_times_with_its_secret(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    response = tick(
        env,
        monkeypatch,
        {"iterations": 3, "delay": 0},
        headers={"x-cron-secret": CRON_SECRET, "Authorization": "Bearer ignored"},
    )
    assert response.status_code == 200
    summary = response.get_json()
    assert {
        k: summary[k]
        for k in ("iterations", "calls", "processed", "succeeded", "failed", "errors", "stopped")
    } == {
        "iterations": 3,
        "calls": 3,
        "processed": 3,
        "succeeded": 3,
        "failed": 0,
        "errors": 0,
        "stopped": "iterations",
    }
    assert summary["duration_ms"] >= 0
    assert all(c["headers"].get("X-Job-Worker-Secret") == WORKER_SECRET for c in worker.calls)
    assert all(json.loads(c["body"]) == {} for c in worker.calls)


def test_max_jobs_is_forwarded(env: dict[str, str], monkeypatch: Any, worker: FakeWorker) -> None:
    tick(env, monkeypatch, {"iterations": 1, "max_jobs": 25})
    assert json.loads(worker.calls[0]["body"]) == {"max_jobs": 25}


def test_delay_is_honoured_between_calls(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    summary = tick(env, monkeypatch, {"iterations": 3, "delay": 200}).get_json()
    gaps = [b["at"] - a["at"] for a, b in zip(worker.calls, worker.calls[1:], strict=False)]
    assert summary["calls"] == 3 and all(gap >= 0.19 for gap in gaps)
    assert summary["duration_ms"] >= 390


def test_stops_early_when_the_queue_is_empty(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    worker.replies = [worker.default, {"processed": 0, "jobs": [], "queue_empty": True}]
    summary = tick(env, monkeypatch, {"iterations": 10, "delay": 0}).get_json()
    assert (summary["calls"], summary["processed"], summary["stopped"]) == (2, 1, "queue_empty")


def test_counts_failed_and_retried_jobs(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    worker.replies = [
        {
            "processed": 3,
            "queue_empty": True,
            "jobs": [
                {"id": 1, "status": "done"},
                {"id": 2, "status": "failed"},
                {"id": 3, "status": "queued"},
            ],
        }
    ]
    summary = tick(env, monkeypatch, {"iterations": 2, "delay": 0}).get_json()
    assert (summary["processed"], summary["succeeded"], summary["failed"]) == (3, 1, 2)


def test_errors_are_counted_and_the_tick_goes_on(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    worker.replies = [500, worker.default, 502]
    summary = tick(env, monkeypatch, {"iterations": 4, "delay": 0}).get_json()
    assert (summary["calls"], summary["errors"], summary["processed"], summary["stopped"]) == (
        4,
        2,
        2,
        "iterations",
    )


def test_three_failures_in_a_row_stop_the_tick(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    worker.replies = [503, 503, 503]
    summary = tick(env, monkeypatch, {"iterations": 10, "delay": 0}).get_json()
    assert (summary["calls"], summary["errors"], summary["stopped"]) == (3, 3, "errors")


def test_timeouts_are_counted_not_crashing(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    worker.replies = [("sleep", 1.0, worker.default)]
    settings = {**env, "WORKER_PULL_TIMEOUT_SECONDS": "0.2"}
    summary = tick(settings, monkeypatch, {"iterations": 2, "delay": 0}).get_json()
    assert (summary["calls"], summary["errors"], summary["processed"]) == (2, 1, 1)


def test_unreachable_worker_pull_is_counted(env: dict[str, str], monkeypatch: Any) -> None:
    settings = {**env, "WORKER_PULL_URL": f"http://127.0.0.1:{free_port()}/"}
    response = tick(settings, monkeypatch, {"iterations": 5, "delay": 0})
    assert response.status_code == 200
    summary = response.get_json()
    assert (summary["calls"], summary["errors"], summary["stopped"]) == (3, 3, "errors")


def test_budget_stops_new_calls(env: dict[str, str], monkeypatch: Any, worker: FakeWorker) -> None:
    settings = {**env, "CRON_TICK_BUDGET_SECONDS": "0.3"}
    summary = tick(settings, monkeypatch, {"iterations": 20, "delay": 100}).get_json()
    assert summary["stopped"] == "budget" and 2 <= summary["calls"] <= 4


def test_concurrency_fans_out_calls(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    worker.default = (
        "sleep",
        0.2,
        {"processed": 1, "jobs": [{"status": "done"}], "queue_empty": False},
    )
    started = time.monotonic()
    summary = tick(env, monkeypatch, {"iterations": 8, "delay": 0, "concurrency": 4}).get_json()
    elapsed = time.monotonic() - started
    assert (summary["calls"], summary["processed"]) == (8, 8)
    assert worker.max_in_flight == 4 and elapsed < 1.2


@pytest.mark.parametrize(
    "headers", [{}, {"x-cron-secret": "nope"}, {"x-job-worker-secret": WORKER_SECRET}]
)
def test_wrong_secret_is_401_and_never_reaches_worker_pull(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker, headers: dict[str, str]
) -> None:
    response = tick(env, monkeypatch, {}, headers=headers)
    assert response.status_code == 401 and worker.calls == []


@pytest.mark.parametrize("missing", ["CRON_SECRET", "WORKER_PULL_URL", "JOB_WORKER_SECRET"])
def test_missing_configuration_is_503_naming_it(
    env: dict[str, str], monkeypatch: Any, missing: str
) -> None:
    settings = {k: v for k, v in env.items() if k != missing}
    response = tick(settings, monkeypatch, {})
    assert response.status_code == 503 and missing in response.get_json()["message"]


def test_invalid_configuration_is_503(env: dict[str, str], monkeypatch: Any) -> None:
    response = tick({**env, "WORKER_PULL_URL": "not a url"}, monkeypatch, {})
    assert response.status_code == 503 and "WORKER_PULL_URL" in response.get_json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"[]",
        b'"x"',
        b"{",
        {"iterations": "5"},
        {"iterations": 5.0},
        {"iterations": False},
        {"iterations": 0},
        {"iterations": 101},
        {"delay": -1},
        {"delay": 60_001},
        {"max_jobs": 0},
        {"concurrency": 51},
        {"extra": 1},
        # The internal name carries its unit; the body's field stays the contract's "delay".
        {"delay_ms": 10},
    ],
)
def test_bad_bodies_are_400(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker, body: Any
) -> None:
    response = tick(env, monkeypatch, body)
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"
    assert worker.calls == []


def test_a_bad_delay_is_named_as_the_caller_wrote_it(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    message = tick(env, monkeypatch, {"delay": -1}).get_json()["message"]
    assert message.startswith("delay: ") and "delay_ms" not in message


def test_empty_body_uses_the_runbook_defaults(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    worker.replies = [{"processed": 0, "jobs": [], "queue_empty": True}]
    summary = tick(env, monkeypatch, b"").get_json()
    assert summary["iterations"] == 5 and summary["stopped"] == "queue_empty"


def test_oversized_body_is_413(env: dict[str, str], monkeypatch: Any) -> None:
    assert tick(env, monkeypatch, "x" * (1024 * 1024 + 1)).status_code == 413


def test_get_is_health_and_other_methods_405(env: dict[str, str], monkeypatch: Any) -> None:
    app = client("cron_tick", env, monkeypatch)
    health = app.get("/")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"
    assert CRON_SECRET not in health.get_data(as_text=True)
    assert app.put("/").status_code == 405


def test_function_url_event(env: dict[str, str], monkeypatch: Any, worker: FakeWorker) -> None:
    handler = load_module("cron_tick", env, monkeypatch).lambda_handler
    event = {
        "version": "2.0",
        "headers": {"X-Cron-Secret": CRON_SECRET},
        "body": '{"iterations": 2, "delay": 0}',
        "isBase64Encoded": False,
        "requestContext": {"http": {"method": "POST"}},
    }
    answer = handler(event, None)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["calls"] == 2
    event["headers"] = {"x-cron-secret": "wrong"}
    assert handler(event, None)["statusCode"] == 401


@pytest.mark.parametrize("source", ["aws.events", "aws.scheduler"])
def test_eventbridge_invocation_needs_no_cron_secret(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker, source: str
) -> None:
    settings = {k: v for k, v in env.items() if k != "CRON_SECRET"}
    handler = load_module("cron_tick", settings, monkeypatch).lambda_handler
    event = {
        "source": source,
        "detail-type": "Scheduled Event",
        "detail": {"iterations": 2, "delay": 0},
    }
    summary = handler(event, None)
    assert summary["calls"] == 2 and summary["stopped"] == "iterations"
    assert worker.calls[0]["headers"]["X-Job-Worker-Secret"] == WORKER_SECRET


def test_scheduler_custom_input_is_the_body(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    handler = load_module("cron_tick", env, monkeypatch).lambda_handler
    assert handler({"iterations": 1, "delay": 0}, None)["calls"] == 1
    with pytest.raises(Exception, match="bad_request") as raised:
        handler({"iterations": "many"}, None)
    invalid = json.loads(str(raised.value))
    assert invalid["error"] == "bad_request" and "iterations" in invalid["message"]
    assert len(worker.calls) == 1


def test_direct_invocation_without_configuration_raises_saying_what_is_missing(
    monkeypatch: Any,
) -> None:
    """Raised, so Lambda counts a function error (Errors metric, Scheduler retries, DLQ)."""
    handler = load_module("cron_tick", {}, monkeypatch).lambda_handler
    with pytest.raises(Exception, match="not_configured") as raised:
        handler({"source": "aws.events", "detail": {}}, None)
    answer = json.loads(str(raised.value))
    assert answer["error"] == "not_configured" and "WORKER_PULL_URL" in answer["message"]


def test_a_direct_invocation_whose_every_call_failed_raises_the_summary(
    monkeypatch: Any,
) -> None:
    env = {"JOB_WORKER_SECRET": WORKER_SECRET, "WORKER_PULL_URL": "http://127.0.0.1:9/"}
    handler = load_module("cron_tick", env, monkeypatch).lambda_handler
    with pytest.raises(Exception) as raised:
        handler({"source": "aws.scheduler", "detail": {"iterations": 2, "delay": 0}}, None)
    summary = json.loads(str(raised.value))
    assert summary["calls"] == summary["errors"] > 0 and summary["stopped"] in (
        "iterations",
        "errors",
    )


def test_a_connection_closed_without_an_answer_is_retried_once(
    env: dict[str, str], monkeypatch: Any
) -> None:
    """A kept-alive connection the server times out as it is reused: the tick must not lose
    the call. Here a raw server closes the first connection without answering."""
    answer = json.dumps({"processed": 1, "jobs": [{"status": "done"}], "queue_empty": True})
    listener = socket.create_server(("127.0.0.1", 0))
    served: list[str] = []

    listener.settimeout(10)  # never hang the suite if the client does not come back

    def read_request(connection: socket.socket) -> None:
        """The whole request, body included: closing with unread bytes would send a reset,
        a different failure from the one this test is about."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?i)content-length: *(\d+)", head)
        length = int(match.group(1)) if match else 0
        while len(body) < length:
            body += connection.recv(65536)

    def run() -> None:
        for index in range(2):
            connection, _ = listener.accept()
            with connection:
                read_request(connection)
                served.append("closed" if index == 0 else "answered")
                if index == 1:
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
                        + answer.encode()
                    )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    settings = {**env, "WORKER_PULL_URL": f"http://127.0.0.1:{port}/"}
    summary = tick(settings, monkeypatch, {"iterations": 1}).get_json()
    thread.join(5)
    listener.close()
    assert served == ["closed", "answered"]
    assert (summary["calls"], summary["errors"], summary["processed"]) == (1, 0, 1)


def test_one_json_log_line_per_tick_without_secrets(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    tick(env, monkeypatch, {"iterations": 2, "delay": 0})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ticks = [line for line in lines if line["message"] == "cron tick finished"]
    assert len(ticks) == 1 and ticks[0]["calls"] == 2 and ticks[0]["stopped"] == "iterations"
    assert CRON_SECRET not in json.dumps(lines) and WORKER_SECRET not in json.dumps(lines)


def test_a_delay_longer_than_the_budget_left_ends_the_tick_at_once(
    env: dict[str, str], monkeypatch: Any, worker: FakeWorker
) -> None:
    settings = {**env, "CRON_TICK_BUDGET_SECONDS": "0.5"}
    started = time.monotonic()
    summary = tick(settings, monkeypatch, {"iterations": 3, "delay": 10_000}).get_json()
    assert (summary["calls"], summary["stopped"]) == (1, "budget")
    assert time.monotonic() - started < 2


class RawWorker:
    """A worker_pull that misbehaves at the byte level: `script(connection)` answers each
    request it reads; counts the requests it was sent."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            with contextlib.suppress(OSError):
                self.script(connection)

    def close(self) -> None:
        self.listener.close()


def test_a_trickling_answer_is_cut_at_the_per_call_timeout(
    env: dict[str, str], monkeypatch: Any
) -> None:
    """One byte every 0.3 s never trips a read timeout; the call's total limit (1 s) ends it."""

    def trickle_headers_then_body(connection: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b" " * 100:
            connection.sendall(bytes([byte]))
            time.sleep(0.3)

    raw = RawWorker(trickle_headers_then_body)
    settings = {**env, "WORKER_PULL_URL": raw.url, "WORKER_PULL_TIMEOUT_SECONDS": "1"}
    started = time.monotonic()
    summary = tick(settings, monkeypatch, {"iterations": 2, "delay": 0}).get_json()
    raw.close()
    assert (summary["calls"], summary["errors"]) == (2, 2)
    assert time.monotonic() - started < 4


def test_a_call_whose_answer_broke_off_after_its_headers_is_not_resent(
    env: dict[str, str], monkeypatch: Any
) -> None:
    def headers_then_hang_up(connection: socket.socket) -> None:
        connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"proc')

    raw = RawWorker(headers_then_hang_up)
    summary = tick({**env, "WORKER_PULL_URL": raw.url}, monkeypatch, {"iterations": 1}).get_json()
    raw.close()
    assert (summary["calls"], summary["errors"], raw.requests) == (1, 1, 1)


@pytest.mark.parametrize(
    "answer",
    [
        '{"processed": 1e999, "jobs": [], "queue_empty": false}',
        '{"processed": 1, "jobs": [], "queue_empty": "false"}',
        '{"processed": "1", "jobs": [], "queue_empty": false}',
        '{"processed": 1, "jobs": "x", "queue_empty": false}',
        '{"processed": 1, "jobs": [5], "queue_empty": false}',
        "[" * 5000 + "]" * 5000,
        '{"processed": NaN, "jobs": [], "queue_empty": false}',
        "not json",
    ],
)
def test_odd_answers_from_worker_pull_are_errors_not_500s(
    env: dict[str, str], monkeypatch: Any, worker_server: HTTPServer, answer: str
) -> None:
    worker_server.expect_request("/worker", method="POST").respond_with_data(
        answer, content_type="application/json"
    )
    try:
        response = tick(env, monkeypatch, {"iterations": 1})
    finally:
        worker_server.clear()
    assert response.status_code == 200
    summary = response.get_json()
    assert (summary["calls"], summary["errors"], summary["processed"]) == (1, 1, 0)


def test_a_warm_instance_keeps_its_connections_from_one_tick_to_the_next(
    env: dict[str, str], monkeypatch: Any
) -> None:
    """One loop and one HTTP client per warm instance: the second tick's call goes over the
    first tick's connection (a new client per tick opened a new one every time). The stand-in
    keeps connections alive as gunicorn does (pytest-httpserver closes each one)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ports: list[int] = []

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            ports.append(self.client_address[1])
            body = json.dumps({"processed": 0, "jobs": [], "queue_empty": False}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = env | {"WORKER_PULL_URL": f"http://127.0.0.1:{server.server_port}/"}
        app = client("cron_tick", env, monkeypatch)
        for _ in range(3):
            answer = app.post("/", json={"iterations": 1}, headers={"x-cron-secret": CRON_SECRET})
            assert answer.get_json()["calls"] == 1
    finally:
        server.shutdown()
        server.server_close()
    assert len(ports) == 3 and len(set(ports)) == 1, ports
