"""worker_pull over HTTP (functions-framework) on both stores, against a real database."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.support import postgrest
from tests.support.functions import client
from tests.support.queue import Conn, insert_job, job, make_runnable

SECRET = "worker-secret-value-1234"
SERVICE_KEY = "service-role-key-5678"
HEADERS = {"x-job-worker-secret": SECRET}

Post = Callable[..., Any]


@pytest.fixture(params=["postgres", "rest"])
def backend_env(request: pytest.FixtureRequest, db: str, httpserver: HTTPServer) -> dict[str, str]:
    """The same suite runs on psycopg (DATABASE_URL) and on Supabase REST (PostgREST rpc)."""
    env = {"JOB_WORKER_SECRET": SECRET}
    if request.param == "postgres":
        env["DATABASE_URL"] = db
    else:
        env["SUPABASE_URL"] = postgrest.install(httpserver, db, SERVICE_KEY)
        env["SUPABASE_SERVICE_ROLE_KEY"] = SERVICE_KEY
    return env


@pytest.fixture
def post(backend_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Post:
    app = client("worker_pull", backend_env, monkeypatch)

    def send(body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body or {})
        return app.post("/", data=data, headers=headers if headers is not None else HEADERS)

    return send


def test_job_is_processed_to_done_with_its_output_stored(post: Post, conn: Conn) -> None:
    job_id = insert_job(conn, "echo", {"hello": "world"})
    response = post({})
    assert response.status_code == 200
    body = response.get_json()
    assert body["processed"] == 1 and body["queue_empty"] is False
    [reported] = body["jobs"]
    assert reported["id"] == job_id and reported["type"] == "echo"
    assert (reported["status"], reported["attempts"], reported["error"]) == ("done", 1, None)
    assert isinstance(reported["duration_ms"], float | int)
    row = job(conn, job_id)
    assert (row["status"], row["output"]) == ("done", {"hello": "world"})


def test_empty_queue_reports_queue_empty(post: Post) -> None:
    response = post(b"")
    assert response.status_code == 200
    assert response.get_json() == {"processed": 0, "jobs": [], "queue_empty": True}


def test_failing_handler_is_retried_then_failed(post: Post, conn: Conn) -> None:
    job_id = insert_job(conn, "echo", {"fail": "flaky peer"}, max_attempts=2)
    [first] = post({}).get_json()["jobs"]
    assert (first["status"], first["attempts"]) == ("queued", 1)
    assert "flaky peer" in first["error"]
    assert post({}).get_json()["processed"] == 0, "the retry waits for its backoff"
    make_runnable(conn, job_id)
    [second] = post({}).get_json()["jobs"]
    assert (second["status"], second["attempts"]) == ("failed", 2)
    assert job(conn, job_id)["status"] == "failed"


def test_permanent_failure_is_not_retried(post: Post, conn: Conn) -> None:
    job_id = insert_job(conn, "echo", {"fail_permanently": "never works"})
    [reported] = post({}).get_json()["jobs"]
    assert reported["status"] == "failed" and "never works" in reported["error"]
    assert job(conn, job_id)["attempts"] == 1


def test_invalid_echo_input_fails_at_once(post: Post, conn: Conn) -> None:
    insert_job(conn, "echo", {"sleep_ms": "soon"})
    [reported] = post({}).get_json()["jobs"]
    assert reported["status"] == "failed" and "sleep_ms" in reported["error"]


def test_unknown_type_fails_permanently_naming_the_type(post: Post, conn: Conn) -> None:
    job_id = insert_job(conn, "transmogrify", {})
    [reported] = post({}).get_json()["jobs"]
    assert reported["status"] == "failed" and "transmogrify" in reported["error"]
    row = job(conn, job_id)
    assert row["attempts"] == 1 and "transmogrify" in row["error"]


def test_max_jobs_is_honoured(post: Post, conn: Conn) -> None:
    ids = [insert_job(conn, "echo", {"n": n}) for n in range(5)]
    first = post({"max_jobs": 3}).get_json()
    assert [j["id"] for j in first["jobs"]] == ids[:3] and first["queue_empty"] is False
    second = post({"max_jobs": 10}).get_json()
    assert [j["id"] for j in second["jobs"]] == ids[3:] and second["queue_empty"] is True


def test_job_types_limit_what_is_claimed(post: Post, conn: Conn) -> None:
    insert_job(conn, "other")
    wanted = insert_job(conn, "echo")
    body = post({"max_jobs": 5, "job_types": ["echo"]}).get_json()
    assert [j["id"] for j in body["jobs"]] == [wanted]


def test_time_budget_stops_claiming_and_gives_back_the_rest(post: Post, conn: Conn) -> None:
    ids = [insert_job(conn, "echo", {"sleep_ms": 150}) for _ in range(6)]
    body = post({"max_jobs": 6, "time_budget_ms": 200}).get_json()
    assert 1 <= body["processed"] <= 2
    untouched = conn.execute(
        "select status, attempts from jobs where id = any(%s) and status <> 'done'", (ids,)
    ).fetchall()
    assert len(untouched) == 6 - body["processed"]
    assert all(r == {"status": "queued", "attempts": 0} for r in untouched)


def test_handler_past_its_time_limit_fails_the_attempt(
    backend_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, conn: Conn
) -> None:
    """JOB_HANDLER_TIMEOUT_SECONDS is the limit of a handler that declares none."""
    from jobqueue.worker.registry import registry

    registry.register("test_sleeper")(lambda input, ctx: ctx.sleep(5))
    app = client("worker_pull", {**backend_env, "JOB_HANDLER_TIMEOUT_SECONDS": "0.2"}, monkeypatch)
    job_id = insert_job(conn, "test_sleeper")
    try:
        response = app.post("/", json={}, headers=HEADERS)
    finally:
        registry.unregister("test_sleeper")
    [reported] = response.get_json()["jobs"]
    assert reported["status"] == "queued" and "time limit" in reported["error"]
    assert reported["duration_ms"] < 2000
    assert job(conn, job_id)["attempts"] == 1


def test_batch_claims_in_few_statements_and_reports_every_job(post: Post, conn: Conn) -> None:
    conn.execute("insert into jobs (type) select 'echo' from generate_series(1, 60)")
    post({"max_jobs": 1})  # teaches this instance how long an echo job takes
    body = post({"max_jobs": 50}).get_json()
    assert body["processed"] == 50 and all(j["status"] == "done" for j in body["jobs"])
    claims = conn.execute("select count(distinct started_at) as n from jobs where status = 'done'")
    assert claims.fetchone()["n"] <= 4


def test_warm_instance_reuses_its_connection(
    db: str, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = client("worker_pull", {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}, monkeypatch)
    for _ in range(5):
        insert_job(conn)
        assert app.post("/", json={}, headers=HEADERS).get_json()["processed"] == 1
    sessions = conn.execute(
        "select count(*) as n from pg_stat_activity where application_name = 'jobqueue'"
        " and datname = current_database()"
    ).fetchone()
    assert sessions["n"] == 1


def test_a_busy_handler_is_interrupted_at_its_limit(
    backend_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, conn: Conn
) -> None:
    """A handler that never looks at its deadline is still stopped, and the call goes on."""
    from jobqueue.worker.registry import registry

    def spin(input: Any, ctx: Any) -> None:
        while True:
            sum(range(1000))

    registry.register("test_spin", timeout_seconds=0.2)(spin)
    app = client("worker_pull", backend_env, monkeypatch)
    spinning = insert_job(conn, "test_spin")
    after = insert_job(conn, "echo", {"after": True})
    try:
        body = app.post("/", json={"max_jobs": 2}, headers=HEADERS).get_json()
    finally:
        registry.unregister("test_spin")
    first, second = body["jobs"]
    assert first["id"] == spinning and first["status"] == "queued"
    assert "time limit" in first["error"] and first["duration_ms"] < 1500
    assert second["id"] == after and second["status"] == "done"


def test_a_handler_runs_its_own_limit_under_a_short_lease_the_guardian_renews(
    db: str, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the lease guardian running, JOB_LEASE_SECONDS no longer bounds a handler: it has
    its own limit (20 s here) under a 2 s lease, which the guardian keeps renewing from its
    own process; ctx.extend_lease still works and the lease never runs out under the job."""
    from jobqueue.worker.registry import registry

    seen: list[tuple[float, float]] = []

    def lease_left(job_id: int) -> float:
        row = conn.execute(
            "select extract(epoch from lease_expires_at - now()) as left from jobs where id = %s",
            (job_id,),
        ).fetchone()
        return float(row["left"])

    def patient(input: Any, ctx: Any) -> str:
        seen.append((ctx.time_left(), lease_left(ctx.job_id)))
        time.sleep(3.5)  # one C call, past the 2 s lease: only another process can renew
        seen.append((ctx.time_left(), lease_left(ctx.job_id)))
        assert ctx.extend_lease(10)
        return "finished"

    registry.register("test_patient", timeout_seconds=20)(patient)
    env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db, "JOB_LEASE_SECONDS": "2"}
    app = client("worker_pull", env, monkeypatch)
    job_id = insert_job(conn, "test_patient")
    try:
        answer = app.post("/", json={}, headers=HEADERS).get_json()
    finally:
        registry.unregister("test_patient")
    assert answer["jobs"][0]["status"] == "done", answer["jobs"][0]["error"]
    (before, lease_before), (after, lease_after) = seen
    assert 19 <= before <= 20 and lease_before > 0
    assert 15 <= after <= 17 and lease_after > 0, "the lease ran out under a running job"
    assert job(conn, job_id)["output"] == "finished"
    expired = conn.execute(
        "select count(*) as n from job_attempts where job_id = %s and outcome = 'expired'",
        (job_id,),
    ).fetchone()
    assert expired == {"n": 0}


def test_jobs_waiting_behind_a_slow_one_are_given_back(
    db: str, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch sized for fast jobs must not hold the rest hostage behind a slow one: they go
    back to the queue (and are claimed anew, here by the same call, after it)."""
    app = client("worker_pull", {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}, monkeypatch)
    insert_job(conn, "echo")
    app.post("/", json={}, headers=HEADERS)  # teaches the instance that jobs are fast
    slow = insert_job(conn, "echo", {"sleep_ms": 700}, priority=-1)
    fast = [insert_job(conn, "echo") for _ in range(4)]
    body = app.post("/", json={"max_jobs": 5}, headers=HEADERS).get_json()
    assert [j["id"] for j in body["jobs"]] == [slow, *fast]
    assert all(j["status"] == "done" for j in body["jobs"])
    gaps = conn.execute(
        "select extract(epoch from f.started_at - s.started_at) as gap"
        " from jobs f, jobs s where s.id = %s and f.id = any(%s)",
        (slow, fast),
    ).fetchall()
    assert all(g["gap"] >= 0.6 for g in gaps), "the fast jobs stayed claimed behind the slow one"
    left = [job(conn, i)["max_attempts"] - job(conn, i)["attempts"] for i in fast]
    assert left == [4] * len(fast), "a give-back spends no attempt (one claim of five, used)"


def test_echo_sleeping_longer_than_the_lease_renews_it(
    db: str, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db, "JOB_LEASE_SECONDS": "1"}
    app = client("worker_pull", env, monkeypatch)
    job_id = insert_job(conn, "echo", {"sleep_ms": 2500})
    [reported] = app.post("/", json={}, headers=HEADERS).get_json()["jobs"]
    assert reported["status"] == "done", reported["error"]
    assert reported["duration_ms"] >= 2500 and job(conn, job_id)["attempts"] == 1


def test_a_batch_costs_one_claim_and_one_finish(db: str, conn: Conn) -> None:
    """Counted at the store: no per-job round trip may creep into a batch."""
    from pydantic import SecretStr

    from jobqueue.handlers import load_handlers
    from jobqueue.settings import WorkerSettings
    from jobqueue.store.postgres import PostgresStore
    from jobqueue.worker.models import PullRequest
    from jobqueue.worker.registry import registry
    from jobqueue.worker.service import WorkerService

    class CountingStore(PostgresStore):
        def __init__(self, dsn: str) -> None:
            super().__init__(dsn)
            self.calls: list[str] = []

        def call(self, function: str, args: dict[str, Any]) -> list[dict[str, Any]]:
            self.calls.append(function)
            return super().call(function, args)

    load_handlers()
    settings = WorkerSettings(job_worker_secret=SecretStr("s"), database_url=SecretStr(db))
    store = CountingStore(db)
    service = WorkerService(store, registry, settings)
    try:
        conn.execute("insert into jobs (type) select 'echo' from generate_series(1, 101)")
        service.pull(PullRequest(max_jobs=1))  # learns how long a job takes
        store.calls.clear()
        answer = service.pull(PullRequest(max_jobs=100))
    finally:
        service.close()
    assert answer["processed"] == 100
    assert store.calls == ["claim_jobs", "finish_jobs"]


def test_an_authorised_answer_says_where_its_time_went(post: Post, conn: Conn) -> None:
    """Server-Timing (W3C): the stages of the call, in ms, for bench/drain.py's profile and
    any browser or proxy tool; never on a refusal, so only a caller with the secret sees it."""
    insert_job(conn, "echo", {"sleep_ms": 30})
    response = post({"max_jobs": 5})
    stages = {
        name: float(duration)
        for name, _, duration in (
            item.strip().partition(";dur=") for item in response.headers["Server-Timing"].split(",")
        )
    }
    assert {"parse", "claim", "handlers", "check", "finish", "report", "respond"} <= set(stages)
    assert stages["handlers"] >= 30 and all(v >= 0 for v in stages.values())
    assert "Server-Timing" not in post({}, headers={}).headers  # 401


def test_a_batchs_outcomes_ride_with_the_next_claim(post: Post, conn: Conn) -> None:
    """One round trip per batch: a cold instance claims one job to learn its duration, then
    records that outcome and claims the rest in one call (finish_claim), and records the
    last batch's outcomes on their own (finish). Every outcome is committed and in the
    history, on both stores."""
    ids = [insert_job(conn, "echo", {"n": n}) for n in range(5)]
    response = post({"max_jobs": 5})
    body = response.get_json()
    assert body["processed"] == 5 and {j["status"] for j in body["jobs"]} == {"done"}
    stages = [item.split(";")[0].strip() for item in response.headers["Server-Timing"].split(",")]
    assert "claim" in stages and "finish_claim" in stages and "finish" in stages
    assert [job(conn, i)["status"] for i in ids] == ["done"] * 5
    recorded = conn.execute(
        "select count(*) as n from job_attempts where outcome = 'done' and job_id = any(%s)",
        (ids,),
    ).fetchone()
    assert recorded == {"n": 5}
