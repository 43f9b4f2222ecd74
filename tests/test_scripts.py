"""The runbook's trigger scripts against really served functions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from jobqueue.tools.serving import Served, free_port, serve_pipeline
from tests.support.functions import cron_tick_with_worker_down
from tests.support.queue import Conn, insert_job, job
from tests.support.scripts import run_script

WORKER_SECRET = "worker-secret-scripts"
CRON_SECRET = "cron-secret-scripts"


@pytest.fixture
def served(db: str, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    with serve_pipeline(db, WORKER_SECRET, CRON_SECRET, tmp_path) as pair:
        yield pair


def test_trigger_worker_processes_one_job(served: tuple[Served, Served], conn: Conn) -> None:
    worker, _ = served
    job_id = insert_job(conn, "echo", {"a": 1})
    done = run_script(
        "trigger-worker.sh", {"JOB_WORKER_SECRET": WORKER_SECRET, "WORKER_PULL_URL": worker.url}
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["jobs"][0]["id"] == job_id
    assert job(conn, job_id)["status"] == "done"
    assert WORKER_SECRET not in done.stdout + done.stderr


def test_trigger_cron_runs_iterations(served: tuple[Served, Served], conn: Conn) -> None:
    _, cron = served
    for _ in range(3):
        insert_job(conn)
    done = run_script(
        "trigger-cron.sh",
        {
            "CRON_SECRET": CRON_SECRET,
            "CRON_TICK_URL": cron.url,
            "SUPABASE_SERVICE_ROLE_KEY": "sent-as-bearer",
        },
        "5",
        "0",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["iterations"], summary["succeeded"], summary["stopped"]) == (
        5,
        3,
        "queue_empty",
    )


@pytest.mark.parametrize(
    ("script", "slug", "secret_header", "env"),
    [
        ("trigger-worker.sh", "worker-pull", "x-job-worker-secret", {"JOB_WORKER_SECRET": "w"}),
        ("trigger-cron.sh", "cron-tick", "x-cron-secret", {"CRON_SECRET": "w"}),
    ],
)
def test_supabase_url_layout_is_the_fallback(
    httpserver: HTTPServer, script: str, slug: str, secret_header: str, env: dict[str, str]
) -> None:
    httpserver.expect_request(
        f"/functions/v1/{slug}",
        method="POST",
        headers={secret_header: "w", "Authorization": "Bearer role-key"},
    ).respond_with_json({"ok": True})
    done = run_script(
        script,
        {**env, "SUPABASE_URL": httpserver.url_for("/"), "SUPABASE_SERVICE_ROLE_KEY": "role-key"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True}


@pytest.mark.parametrize(
    ("script", "env", "named"),
    [
        ("trigger-worker.sh", {"WORKER_PULL_URL": "http://127.0.0.1:9"}, "JOB_WORKER_SECRET"),
        ("trigger-worker.sh", {"JOB_WORKER_SECRET": "x"}, "WORKER_PULL_URL"),
        ("trigger-cron.sh", {"CRON_TICK_URL": "http://127.0.0.1:9"}, "CRON_SECRET"),
        ("trigger-cron.sh", {"CRON_SECRET": "x"}, "CRON_TICK_URL"),
    ],
)
def test_missing_variable_is_exit_2_naming_it(script: str, env: dict[str, str], named: str) -> None:
    done = run_script(script, env)
    assert done.returncode == 2 and named in done.stderr and len(done.stderr.splitlines()) == 1


def test_non_2xx_answer_is_exit_1_with_the_answer_printed(served: tuple[Served, Served]) -> None:
    _, cron = served
    done = run_script("trigger-cron.sh", {"CRON_SECRET": "wrong", "CRON_TICK_URL": cron.url})
    assert done.returncode == 1 and json.loads(done.stdout)["error"] == "unauthorized"


def test_unreachable_function_is_exit_1() -> None:
    done = run_script(
        "trigger-worker.sh",
        {"JOB_WORKER_SECRET": "x", "WORKER_PULL_URL": f"http://127.0.0.1:{free_port()}"},
    )
    assert done.returncode == 1


def test_trigger_cron_accepts_leading_zeros(served: tuple[Served, Served]) -> None:
    _, cron = served
    env = {"CRON_TICK_URL": cron.url, "CRON_SECRET": CRON_SECRET}
    result = run_script("trigger-cron.sh", env, "05", "0010")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["iterations"] == 5


@pytest.mark.parametrize("script", ["trigger-cron.sh", "trigger-worker.sh"])
def test_a_secret_with_a_newline_is_refused_not_sent(script: str, httpserver: HTTPServer) -> None:
    """A newline would add a header line of the secret's choosing to the request."""
    name = "CRON_SECRET" if script == "trigger-cron.sh" else "JOB_WORKER_SECRET"
    env = {
        "CRON_TICK_URL": httpserver.url_for("/"),
        "WORKER_PULL_URL": httpserver.url_for("/"),
        name: "secret\nX-Injected: yes",
    }
    result = run_script(script, env)
    assert result.returncode == 2 and name in result.stderr
    assert "secret" not in result.stdout + result.stderr.replace(name, "")
    assert httpserver.log == []


def test_trigger_cron_exits_1_when_every_worker_call_failed(tmp_path: Path) -> None:
    """cron_tick answers 200, but worker_pull is down: the tick processed nothing."""
    with cron_tick_with_worker_down(CRON_SECRET, WORKER_SECRET, tmp_path) as cron:
        result = run_script(
            "trigger-cron.sh", {"CRON_TICK_URL": cron.url, "CRON_SECRET": CRON_SECRET}, "2", "0"
        )
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["calls"] == summary["errors"] > 0
    assert "every worker_pull call" in result.stderr
