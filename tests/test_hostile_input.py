"""Every input the functions cannot take is refused with a 4xx in JSON, over HTTP and Lambda,
before it reaches PostgreSQL or the JSON decoder's limits (issue 9, breaks 4, 5, 8 and 9)."""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobqueue.cron.app import DirectInvocationFailed
from jobqueue.tools.serving import serve
from tests.support.functions import client, load_module

WORKER_SECRET = "worker-secret-value-1234"
CRON_SECRET = "cron-secret-value-5678"

DEEP = "[" * 5000 + "]" * 5000
HOSTILE_BODIES = [
    DEEP,
    '{"job_types": ' + DEEP + "}",
    '{"job_types": ' + "[" * 100 + '"a"' + "]" * 100 + "}",
    '{"job_types": ["a\\u0000b"]}',
    '{"job_types": ["\\ud800"]}',
    '{"job_types": {"\\u0000": 1}}',
    '{"max_jobs": NaN}',
    '{"max_jobs": Infinity}',
    '{"max_jobs": 1e999}',
    '{"max_jobs": 1, "\\ud800": 1}',
    b'{"max_jobs": "\xff"}',
]


@pytest.fixture
def worker(db: str, monkeypatch: Any) -> Any:
    return client(
        "worker_pull", {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}, monkeypatch
    )


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_bodies_are_400_json(worker: Any, body: str | bytes) -> None:
    response = worker.post("/", data=body, headers={"x-job-worker-secret": WORKER_SECRET})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"] == "bad_request"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["max_jobs", "job_types", "time_budget_ms", "x"]), JSON_VALUES, max_size=4
    ).map(lambda d: json.dumps(d).encode()),
)


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
def test_any_body_gets_a_json_answer_never_a_500(worker: Any, body: bytes) -> None:
    response = worker.post("/", data=body, headers={"x-job-worker-secret": WORKER_SECRET})
    assert response.status_code in (200, 400), (body, response.get_data(as_text=True)[:300])
    assert isinstance(response.get_json(), dict)


MALFORMED_EVENTS: list[Any] = [
    None,
    [],
    5,
    "a string",
    {"requestContext": "a string"},
    {"requestContext": {"http": None}},
    {"requestContext": {"http": {"method": 5}}},
    {"httpMethod": "POST", "headers": ["x"]},
    {"httpMethod": "POST", "headers": "x"},
    {"httpMethod": "POST", "headers": {}, "body": "!!!", "isBase64Encoded": True},
    {"httpMethod": "POST", "headers": {}, "body": {"not": "a string"}},
    {"httpMethod": "POST", "headers": {}, "body": DEEP},
]


def with_secret(event: Any, header: str, secret: str) -> Any:
    """The right secret where the event has headers at all: what is malformed is the rest."""
    if isinstance(event, dict) and isinstance(event.get("headers", {}), dict):
        return {**event, "headers": {**event.get("headers", {}), header: secret}}
    return event


@pytest.mark.parametrize("event", MALFORMED_EVENTS, ids=range(len(MALFORMED_EVENTS)))
def test_malformed_lambda_events_get_an_answer(db: str, monkeypatch: Any, event: Any) -> None:
    env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}
    module = load_module("worker_pull", env, monkeypatch)
    answer = module.lambda_handler(with_secret(event, "x-job-worker-secret", WORKER_SECRET), None)
    assert answer["statusCode"] == 400, answer
    assert json.loads(answer["body"])["error"] == "bad_request"


@pytest.mark.parametrize("event", MALFORMED_EVENTS, ids=range(len(MALFORMED_EVENTS)))
def test_cron_tick_answers_malformed_events(monkeypatch: Any, event: Any) -> None:
    env = {
        "CRON_SECRET": CRON_SECRET,
        "JOB_WORKER_SECRET": WORKER_SECRET,
        "WORKER_PULL_URL": "http://127.0.0.1:9/",
    }
    module = load_module("cron_tick", env, monkeypatch)
    try:
        answer = module.lambda_handler(with_secret(event, "x-cron-secret", CRON_SECRET), None)
    except DirectInvocationFailed as exc:  # a direct invocation with an invalid body
        assert json.loads(str(exc))["error"] == "bad_request", exc
    else:  # an HTTP event
        assert answer["statusCode"] == 400, answer


def test_valid_base64_body_is_decoded(db: str, monkeypatch: Any) -> None:
    env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}
    module = load_module("worker_pull", env, monkeypatch)
    event = {
        "requestContext": {"http": {"method": "POST"}},
        "headers": {"X-Job-Worker-Secret": WORKER_SECRET},
        "body": base64.b64encode(b'{"max_jobs": 2}').decode(),
        "isBase64Encoded": True,
    }
    answer = module.lambda_handler(event, None)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["queue_empty"] is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:notaport/db"),
        ("DATABASE_URL", "postgresql://u:hunter2@127.0.0.1/db?sslmode=bogus"),
        ("DATABASE_URL", "postgresql://u:hunter2@127.0.0.1/db?nosuchoption=1"),
        ("JOB_WORKER_SECRET", " padded-secret "),
        ("JOB_WORKER_SECRET", "sécret"),
        ("JOB_WORKER_SECRET", "two\nlines"),
    ],
)
def test_bad_configuration_is_503_not_configured_naming_it(
    db: str, monkeypatch: Any, variable: str, value: str
) -> None:
    env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db, variable: value}
    app = client("worker_pull", env, monkeypatch)
    response = app.post("/", json={}, headers={"x-job-worker-secret": WORKER_SECRET})
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == "not_configured" and variable in body["message"]
    assert "hunter2" not in response.get_data(as_text=True)


@pytest.mark.parametrize("value", [" padded ", "sécret", "tab\there"])
@pytest.mark.parametrize("variable", ["JOB_WORKER_SECRET", "CRON_SECRET"])
def test_cron_tick_refuses_secrets_it_cannot_send(
    monkeypatch: Any, variable: str, value: str
) -> None:
    env = {
        "CRON_SECRET": CRON_SECRET,
        "JOB_WORKER_SECRET": WORKER_SECRET,
        "WORKER_PULL_URL": "http://127.0.0.1:9/",
        variable: value,
    }
    app = client("cron_tick", env, monkeypatch)
    assert app.get("/").get_json()["configured"] is False
    response = app.post("/", json={}, headers={"x-cron-secret": CRON_SECRET})
    assert response.status_code == 503 and variable in response.get_json()["message"]


def test_slow_clients_without_the_secret_cannot_starve_the_server(db: str, tmp_path: Any) -> None:
    """More half-sent bodies than the server has threads: each is refused at once (the secret is
    checked before the body is read), and health checks and real calls still answer."""
    env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}
    with serve("worker_pull", env, tmp_path) as served:
        port = int(served.url.rsplit(":", 1)[1])
        sockets = []
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n" + b"{" + b" " * 500
            )
            sockets.append(sock)
        try:
            started = time.monotonic()
            assert httpx.get(served.url, timeout=5).status_code == 200
            answer = httpx.post(
                served.url, json={}, headers={"x-job-worker-secret": WORKER_SECRET}, timeout=5
            )
            assert answer.status_code == 200
            assert time.monotonic() - started < 3
            for sock in sockets:
                sock.settimeout(5)
                assert sock.recv(100).startswith(b"HTTP/1.1 401")
        finally:
            for sock in sockets:
                sock.close()
