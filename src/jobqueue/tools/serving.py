"""Serves a function with the real functions-framework CLI, as a deployment would.

Used by the tests, the benchmarks and local runs: one process per function, on a free port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]  # the repository (editable install)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Configuration the functions read: never inherited, so a served function gets exactly `env`.
CONFIG_VARIABLES = frozenset(
    {
        "JOB_WORKER_SECRET",
        "CRON_SECRET",
        "DATABASE_URL",
        "SUPABASE_URL",
        "SUPABASE_SECRET_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
        "WORKER_PULL_URL",
        "JOB_LEASE_SECONDS",
        "WORKER_PULL_TIMEOUT_SECONDS",
        "CRON_TICK_BUDGET_SECONDS",
        "WORKER_PULL_TIME_BUDGET_SECONDS",
        "JOB_HANDLER_TIMEOUT_SECONDS",
        "JOB_MAX_RETRY_DELAY_SECONDS",
        "JOB_HANDLER_MODULES",
        "DATABASE_CALL_TIMEOUT_SECONDS",
        "WORKER_PULL_ID_TOKEN_AUDIENCE",
        "INGEST_MAX_BYTES",
        "INGEST_MAX_TEXT_CHARS",
        "INGEST_MAX_CHUNKS",
        "INGEST_MAX_EXPANDED_BYTES",
        "INGEST_CHUNK_CHARS",
        "INGEST_CHUNK_OVERLAP",
        "EMBEDDINGS_URL",
        "EMBEDDINGS_MODEL",
        "EMBEDDINGS_API_KEY",
        "EMBEDDINGS_BATCH",
    }
)


@dataclass(frozen=True)
class Served:
    url: str
    log: Path
    pid: int

    def output(self) -> str:
        """Everything the function wrote to stdout and stderr so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], name: str, seconds: float = 30
) -> None:
    """Until a GET (the health check) answers 200; RuntimeError if the process exits first or
    `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.05)


@contextmanager
def serve(function: str, env: dict[str, str], log_dir: Path) -> Iterator[Served]:
    """Serves `function` on a free port with exactly `env` as its configuration."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        str(ROOT / "functions" / function / "main.py"),
        "--target",
        function,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    inherited = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    log_path = log_dir / f"{function}-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, cwd=ROOT, env={**inherited, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, function)
        yield Served(url, log_path, process.pid)
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@contextmanager
def serve_pipeline(
    database_url: str,
    worker_secret: str,
    cron_secret: str,
    log_dir: Path,
    cron_env: dict[str, str] | None = None,
) -> Iterator[tuple[Served, Served]]:
    """worker_pull on the queue at `database_url`, and cron_tick calling it (with `cron_env`
    added to its configuration)."""
    worker_env = {"JOB_WORKER_SECRET": worker_secret, "DATABASE_URL": database_url}
    with serve("worker_pull", worker_env, log_dir) as worker:
        cron_config = {
            "CRON_SECRET": cron_secret,
            "JOB_WORKER_SECRET": worker_secret,
            "WORKER_PULL_URL": worker.url,
            **(cron_env or {}),
        }
        with serve("cron_tick", cron_config, log_dir) as cron:
            yield worker, cron
