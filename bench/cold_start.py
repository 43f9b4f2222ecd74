"""cold start: the import of each function's entry module in a fresh process, as a new
serverless instance pays it. Two figures each: the whole import (functions-framework included),
the module's own share with functions-framework already loaded (what a functions-framework
server adds when it loads the source), and the import plus what the first request loads
(heavy libraries wait for it). Median of several fresh processes.

    python bench/cold_start.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
PROBE = """
import sys, time
sys.path.insert(0, {folder!r})
{preload}
started = time.perf_counter()
import main
{then}
print(time.perf_counter() - started)
"""
# What the first request adds: settings (pydantic-settings), the body model and the service's
# imports (httpx for cron_tick; psycopg and the handlers for worker_pull).
FIRST_REQUEST = {
    "cron_tick": "main.app.endpoint.health(); main.app.endpoint.parse({}); import httpx, "
    "jobqueue.cron.service",
    "worker_pull": "main.app.endpoint.health(); main.app.endpoint.parse({}); "
    "import jobqueue.store.postgres, jobqueue.worker.service, jobqueue.handlers; "
    "jobqueue.handlers.load_handlers()",
}


def import_ms(function: str, preload: str, then: str = "") -> float:
    folder = str(ROOT / "functions" / function)
    code = PROBE.format(folder=folder, preload=preload, then=then)
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            ).stdout
        )
        * 1000
        for _ in range(RUNS)
    ]
    return statistics.median(samples)


def main() -> None:
    for function, target in (("cron_tick", 150), ("worker_pull", 400)):
        whole = import_ms(function, "")
        own = import_ms(function, "import functions_framework")
        ready = import_ms(function, "", FIRST_REQUEST[function])
        print(
            f"{function:12s} import {whole:6.1f} ms (own share {own:5.1f} ms; with the first"
            f" request's imports {ready:6.1f} ms); target {target} ms"
        )


if __name__ == "__main__":
    main()
