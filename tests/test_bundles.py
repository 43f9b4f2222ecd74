"""The deployable bundles, as a user deploys them (issue 10; the README's
"Deploying"): built by scripts/build-bundles.sh, each source folder installed into a fresh
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

from jobqueue.tools.serving import ROOT, free_port, wait_until_healthy
from tests.support import pg
from tests.support.queue import insert_job, job

pytestmark = pytest.mark.slow

WORKER_SECRET = "worker-secret-bundles"
CRON_SECRET = "cron-secret-bundles"
FUNCTIONS = ("cron_tick", "worker_pull")
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:test"


HOST_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _build(out: Path, python_version: str | None) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "LAMBDA_PYTHON_VERSION"}
    if python_version:
        env["LAMBDA_PYTHON_VERSION"] = python_version
    subprocess.run(
        ["bash", "scripts/build-bundles.sh", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env=env,
    )
    return out


@pytest.fixture(scope="module")
def default_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `scripts/build-bundles.sh` builds with no option: for the template's runtime."""
    return _build(tmp_path_factory.mktemp("dist-default"), None)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built for the interpreter here, so the tests can run the zips (LAMBDA_PYTHON_VERSION)."""
    return _build(tmp_path_factory.mktemp("dist"), HOST_PYTHON)


def _template_python() -> str:
    import re

    text = (ROOT / "infra" / "aws" / "template.yaml").read_text()
    match = re.search(r"PythonRuntime:[^\n]*\n(?:\s+\w+:.*\n)*?\s+Default: python(3\.\d+)", text)
    assert match is not None
    return match.group(1)


def test_the_default_zips_carry_only_wheels_for_the_templates_runtime(
    default_bundles: Path,
) -> None:
    """Every compiled extension in each zip is tagged for the template's Python (cp313 for
    python3.13), whatever Python ran the build."""
    tag = "cpython-" + _template_python().replace(".", "")
    for function in FUNCTIONS:
        with zipfile.ZipFile(default_bundles / f"{function}-lambda.zip") as archive:
            extensions = [n for n in archive.namelist() if n.endswith(".so") and ".cpython-" in n]
            wheels = [n for n in archive.namelist() if n.endswith(".dist-info/WHEEL")]
            tags = {
                line.split(":", 1)[1].strip()
                for name in wheels
                for line in archive.read(name).decode().splitlines()
                if line.startswith("Tag:")
            }
        assert extensions, f"{function}: expected compiled extensions (pydantic_core)"
        assert all(tag in name for name in extensions), [n for n in extensions if tag not in n]
        py = "cp" + _template_python().replace(".", "")
        binary = {t for t in tags if not t.split("-")[0].startswith("py")}  # pure: any Python
        assert binary and all(t.startswith(py + "-") or "-abi3-" in t for t in binary), binary


# The allow-list derived from main.py's imports: exactly these modules of jobqueue, and every
# one of them is imported by a test that runs the bundle.
CRON_MODULES = {
    "__init__",
    "errors",
    "jsonsafe",
    "log",
    "settings",
    "supabase_keys",
    "timing",
    "validation",
    "cron/__init__",
    "cron/app",
    "cron/id_token",
    "cron/models",
    "cron/service",
    "http/__init__",
    "http/core",
    "http/entry",
    "http/flask_adapter",
    "http/lambda_adapter",
    "http/wsgi_guard",
}
WORKER_MODULES = {
    "__init__",
    "errors",
    "handler",
    "jsonsafe",
    "log",
    "queries",
    "settings",
    "supabase_keys",
    "timing",
    "validation",
    "http/__init__",
    "http/core",
    "http/entry",
    "http/flask_adapter",
    "http/lambda_adapter",
    "http/wsgi_guard",
    "handlers/__init__",
    "handlers/echo",
    "handlers/ingest/__init__",
    "handlers/ingest/chunks",
    "handlers/ingest/detect",
    "handlers/ingest/embed",
    "handlers/ingest/extract",
    "handlers/ingest/fetch",
    "handlers/ingest/handler",
    "handlers/ingest/retry",
    "handlers/ingest/settings",
    "handlers/ingest/storage_url",
    "store/__init__",
    "store/base",
    "store/postgres",
    "store/opening",
    "store/rest",
    "worker/__init__",
    "worker/app",
    "worker/context",
    "worker/execution",
    "worker/guardian",
    "worker/leases",
    "worker/models",
    "worker/outcome_buffer",
    "worker/outcomes",
    "worker/registry",
    "worker/report",
    "worker/runner",
    "worker/service",
}


def test_each_bundle_holds_exactly_the_modules_its_function_imports(bundles: Path) -> None:
    for function, expected in (("cron_tick", CRON_MODULES), ("worker_pull", WORKER_MODULES)):
        for where in ("folder", "zip"):
            if where == "folder":
                root = bundles / function / "jobqueue"
                files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
            else:
                with zipfile.ZipFile(bundles / f"{function}-lambda.zip") as archive:
                    files = {
                        n.removeprefix("jobqueue/")
                        for n in archive.namelist()
                        if n.startswith("jobqueue/") and not n.endswith("/")
                    }
            modules = {f.removesuffix(".py") for f in files if f.endswith(".py")}
            data = {f for f in files if not f.endswith(".py")}
            assert modules == expected, (function, where, modules ^ expected)
            assert data == ({"sql/queries.sql"} if function == "worker_pull" else set())


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
        # Only the operator's tools upload to Storage or draw tables: no function ships them.
        assert not names & {"storage3", "rich", "pgserver"}
        if function == "cron_tick":
            assert not names & {"psycopg", "psycopg-binary", "supabase", "postgrest"}
            assert not (folder / "jobqueue" / "store").exists(), "no queue store in cron_tick"


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
        assert {k: health[k] for k in ("status", "function", "configured")} == {
            "status": "ok",
            "function": "worker_pull",
            "configured": True,
        }
        assert health["handlers"]["echo"] == {"configured": True}
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
