"""The deployable bundles, as a user deploys them (issue 10; CONTRACT.md "Bundles and
deployment"): built by scripts/build-bundles.sh, each source folder installed into a fresh
virtual environment from its own requirements.txt and served from inside that folder, and each
Lambda zip run by the real Lambda runtime interface client (awslambdaric) against a stand-in of
the Lambda Runtime API."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug import Request, Response
from werkzeug.serving import make_server

from jobqueue.serving import ROOT, free_port, wait_until_healthy
from tests.support import pg
from tests.support.queue import insert_job, job

pytestmark = pytest.mark.slow

WORKER_SECRET = "worker-secret-bundles"
CRON_SECRET = "cron-secret-bundles"
FUNCTIONS = ("cron_tick", "worker_pull")
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:test"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        ["bash", "scripts/build-bundles.sh", str(out)], cwd=ROOT, check=True, capture_output=True
    )
    return out


def test_each_source_folder_has_main_and_pinned_requirements(bundles: Path) -> None:
    for function in FUNCTIONS:
        folder = bundles / function
        assert (folder / "main.py").is_file() and (folder / "jobqueue" / "__init__.py").is_file()
        lines = [
            line
            for line in (folder / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert lines and all("==" in line and not line.startswith("-") for line in lines)
        names = {line.split("==")[0] for line in lines}
        assert "functions-framework" in names
        assert not names & {"pytest", "ruff", "mypy", "hypothesis", "jobqueue"}
        if function == "cron_tick":
            assert not names & {"psycopg", "psycopg-binary", "supabase", "postgrest", "storage3"}
            assert not (folder / "jobqueue" / "store").exists(), "no queue store in cron_tick"
        assert not (folder / "jobqueue" / "cli.py").exists(), "no operator tools in a bundle"


def test_lambda_zips_hold_no_web_framework_and_cron_no_database_driver(bundles: Path) -> None:
    for function in FUNCTIONS:
        with zipfile.ZipFile(bundles / f"{function}-lambda.zip") as archive:
            tops = {name.split("/")[0] for name in archive.namelist()}
        assert "main.py" in tops and "jobqueue" in tops
        assert not tops & {"flask", "functions_framework", "gunicorn", "werkzeug"}
        if function == "cron_tick":
            assert not {t for t in tops if t.startswith(("psycopg", "postgrest", "storage3"))}
        else:
            assert "psycopg_binary" in tops and "pydantic_core" in tops


@pytest.fixture(scope="module")
def venvs(bundles: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each folder copied outside the repo, with its own fresh virtual environment."""
    made = {}
    for function in FUNCTIONS:
        place = tmp_path_factory.mktemp(f"deploy-{function}")
        folder = place / function
        shutil.copytree(bundles / function, folder)
        venv = place / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                "requirements.txt",
            ],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        made[function] = folder
    return made


@contextmanager
def serve_folder(folder: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """functions-framework from inside the deployed folder, as Cloud Run runs it."""
    port = free_port()
    venv_bin = folder.parent / "venv" / "bin"
    clean = {"PATH": f"{venv_bin}:/usr/bin:/bin", "HOME": str(folder.parent)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(venv_bin / "functions-framework"),
                "--source",
                "main.py",
                "--target",
                folder.name,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=folder,
            env={**clean, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_healthy(url, process, folder.name)
            except RuntimeError as exc:
                raise AssertionError(f"{exc}: {log.read_text()}") from None
            yield url
        finally:
            process.terminate()
            process.wait(10)


def test_source_folders_serve_and_process_jobs(
    venvs: dict[str, Path], db: str, tmp_path: Path
) -> None:
    cron_python = venvs["cron_tick"].parent / "venv" / "bin" / "python"
    no_driver = subprocess.run([str(cron_python), "-c", "import psycopg"], capture_output=True)
    assert no_driver.returncode != 0, "cron_tick's environment must not have psycopg"
    worker_env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}
    with serve_folder(venvs["worker_pull"], worker_env, tmp_path / "w.log") as worker:
        health = httpx.get(worker).json()
        assert health == {"status": "ok", "function": "worker_pull", "configured": True}
        cron_env = {
            "CRON_SECRET": CRON_SECRET,
            "JOB_WORKER_SECRET": WORKER_SECRET,
            "WORKER_PULL_URL": worker,
        }
        with (
            serve_folder(venvs["cron_tick"], cron_env, tmp_path / "c.log") as cron,
            pg.connect(db) as conn,
        ):
            assert httpx.get(cron).json()["configured"] is True
            ids = [insert_job(conn, "echo", {"n": n}) for n in range(5)]
            one = httpx.post(worker, json={}, headers={"x-job-worker-secret": WORKER_SECRET})
            assert one.json()["processed"] == 1
            tick = httpx.post(
                cron,
                json={"iterations": 3, "delay": 0, "max_jobs": 10},
                headers={"x-cron-secret": CRON_SECRET},
                timeout=60,
            ).json()
            assert tick["succeeded"] == 4 and tick["errors"] == 0
            assert all(job(conn, i)["status"] == "done" for i in ids)


class RuntimeApi:
    """The Lambda Runtime API as awslambdaric calls it: it hands out queued events on
    /invocation/next with the runtime's headers and collects /response and /error posts."""

    def __init__(self) -> None:
        self.events: queue.Queue[Any] = queue.Queue()
        self.results: dict[str, Any] = {}
        self.done = threading.Condition()
        self.server = make_server("127.0.0.1", 0, self.handle, threaded=True)
        self.address = f"127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path
        if path == "/2018-06-01/runtime/invocation/next":
            request_id, event = self.events.get()
            response = Response(
                json.dumps(event),
                content_type="application/json",
                headers={
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                },
            )
        elif path.startswith("/2018-06-01/runtime/"):
            parts = path.split("/")
            request_id = parts[4] if len(parts) > 5 else "init"
            outcome = parts[-1]
            with self.done:
                self.results[request_id] = (outcome, request.get_data(as_text=True))
                self.done.notify_all()
            response = Response(json.dumps({"status": "OK"}), status=202)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def invoke(self, event: Any, seconds: float = 60) -> Any:
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        with self.done:
            assert self.done.wait_for(
                lambda: request_id in self.results or "init" in self.results, seconds
            ), "no answer from the function"
        outcome, body = self.results.get(request_id) or self.results["init"]
        assert outcome == "response", body
        return json.loads(body)


@contextmanager
def lambda_runtime(zip_path: Path, env: dict[str, str], tmp: Path) -> Iterator[RuntimeApi]:
    """The zip unzipped as Lambda does, first on sys.path of a clean interpreter (-I), run by
    awslambdaric."""
    task_root = tmp / f"task-{zip_path.stem}"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task_root)
    api = RuntimeApi()
    bootstrap = (
        "import sys, runpy; sys.path.insert(0, sys.argv[1]); "
        "sys.argv = ['awslambdaric', 'main.lambda_handler']; "
        "runpy.run_module('awslambdaric', run_name='__main__')"
    )
    log = (tmp / f"{zip_path.stem}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", bootstrap, str(task_root)],
        cwd=task_root,
        env={
            "PATH": os.environ["PATH"],
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": "main.lambda_handler",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield api
    finally:
        process.kill()
        process.wait(10)
        api.server.shutdown()
        log.close()
        loaded = (tmp / f"{zip_path.stem}.log").read_text(errors="replace")
        assert "flask" not in loaded.lower() or "Traceback" not in loaded, loaded


def test_lambda_zips_run_under_the_real_runtime_client(
    bundles: Path, db: str, tmp_path: Path
) -> None:
    worker_env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}
    with (
        lambda_runtime(bundles / "worker_pull-lambda.zip", worker_env, tmp_path) as worker,
        pg.connect(db) as conn,
    ):
        job_id = insert_job(conn, "echo", {"via": "lambda"})
        url_event = {
            "version": "2.0",
            "rawPath": "/",
            "headers": {"x-job-worker-secret": WORKER_SECRET, "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/"}},
            "body": json.dumps({"max_jobs": 5}),
            "isBase64Encoded": False,
        }
        answer = worker.invoke(url_event)
        assert answer["statusCode"] == 200
        assert json.loads(answer["body"])["jobs"][0]["id"] == job_id
        assert job(conn, job_id)["status"] == "done"
        probe = worker.invoke({**url_event, "requestContext": {"http": {"method": "GET"}}})
        assert json.loads(probe["body"])["status"] == "ok"


def test_cron_lambda_zip_takes_a_scheduler_event(
    bundles: Path, venvs: dict[str, Path], db: str, tmp_path: Path
) -> None:
    """EventBridge Scheduler invokes cron_tick directly with the tick's body as its input."""
    worker_env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": db}
    with serve_folder(venvs["worker_pull"], worker_env, tmp_path / "w.log") as worker_url:
        cron_env = {"JOB_WORKER_SECRET": WORKER_SECRET, "WORKER_PULL_URL": worker_url}
        with (
            lambda_runtime(bundles / "cron_tick-lambda.zip", cron_env, tmp_path) as cron,
            pg.connect(db) as conn,
        ):
            ids = [insert_job(conn, "echo") for _ in range(3)]
            summary = cron.invoke({"iterations": 2, "delay": 0, "max_jobs": 10})
            assert summary["succeeded"] == 3, summary
            eventbridge = {
                "source": "aws.events",
                "detail-type": "Scheduled Event",
                "detail": {"iterations": 1, "delay": 0},
            }
            assert cron.invoke(eventbridge)["stopped"] == "queue_empty"
            assert all(job(conn, i)["status"] == "done" for i in ids)


def test_the_lambda_path_needs_nothing_but_the_zip_and_loads_no_flask(
    bundles: Path, tmp_path: Path
) -> None:
    """Only the zip and the standard library on sys.path (python -I -S): the handler imports
    and answers, and no web framework was loaded."""
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import main; "
        "answer = main.lambda_handler({'requestContext': {'http': {'method': 'GET'}}}, None); "
        "print(json.dumps({'status': answer['statusCode'], 'loaded': sorted(sys.modules)}))"
    )
    for function in FUNCTIONS:
        task = tmp_path / function
        with zipfile.ZipFile(bundles / f"{function}-lambda.zip") as archive:
            archive.extractall(task)
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", probe, str(task)],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["status"] == 200
        assert not {"flask", "functions_framework", "werkzeug"} & set(result["loaded"])
