"""worker_pull's service called in this process until a claim finds the queue empty, for
`jobqueue work`: no HTTP, the same SQL functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def drain(
    dsn: str, max_jobs: int, on_batch: Callable[[dict[str, int]], None] | None = None
) -> dict[str, Any]:
    """Processes until the queue is empty, with the handlers worker_pull would load (the
    built-in ones and JOB_HANDLER_MODULES); ``on_batch`` sees the running totals."""
    from pydantic import SecretStr

    from jobqueue.handlers import load_handlers
    from jobqueue.settings import WorkerSettings
    from jobqueue.store.postgres import PostgresStore
    from jobqueue.worker.models import PullRequest
    from jobqueue.worker.registry import registry
    from jobqueue.worker.service import WorkerService

    settings = WorkerSettings(job_worker_secret=SecretStr("local"), database_url=SecretStr(dsn))
    load_handlers(settings.job_handler_modules.split(","))
    service = WorkerService(PostgresStore(dsn), registry, settings)
    totals: dict[str, int] = {}
    try:
        while True:
            answer = service.pull(PullRequest(max_jobs=max_jobs))
            for job in answer["jobs"]:
                totals[job["status"]] = totals.get(job["status"], 0) + 1
            if on_batch is not None:
                on_batch(totals)
            if answer["queue_empty"] or not answer["processed"]:
                return {"processed": sum(totals.values()), "by_status": totals}
    finally:
        service.close()
