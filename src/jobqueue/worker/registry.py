"""Job type -> handler. Adding a job type is one decorated function in ``jobqueue/handlers/``.

    from jobqueue.worker.registry import job_handler

    @job_handler("resize_image", timeout_seconds=120)
    def resize_image(input: dict, ctx: JobContext) -> dict:
        ...
        return {"width": 800}

A handler returns a JSON-able output, stored on the job. It raises ``PermanentJobError`` to fail
the job at once, ``RetryJobError`` to ask for a retry after a given delay, and anything else to be
retried with backoff until ``max_attempts``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# The outcomes are the handler API's too (jobqueue.handler); named here as before.
from jobqueue.worker.outcomes import JobError as JobError
from jobqueue.worker.outcomes import JobTimeout as JobTimeout
from jobqueue.worker.outcomes import PermanentJobError as PermanentJobError
from jobqueue.worker.outcomes import RetryJobError as RetryJobError
from jobqueue.worker.outcomes import SnoozeJob as SnoozeJob

if TYPE_CHECKING:
    from jobqueue.worker.context import JobContext

HandlerFunc = Callable[[Any, "JobContext"], Any]


@dataclass(frozen=True)
class Handler:
    job_type: str
    func: HandlerFunc
    timeout_seconds: float | None = None
    # What is wrong with the handler's own configuration (a sentence naming the variable),
    # or None: shown by worker_pull's health check, so a deployment fault is seen before
    # any job fails of it.
    check: Callable[[], str | None] | None = None

    def problem(self) -> str | None:
        return self.check() if self.check is not None else None


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(
        self,
        job_type: str,
        *,
        timeout_seconds: float | None = None,
        check: Callable[[], str | None] | None = None,
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        def decorate(func: HandlerFunc) -> HandlerFunc:
            if job_type in self._handlers and self._handlers[job_type].func is not func:
                raise ValueError(f"a handler for job type {job_type!r} is already registered")
            self._handlers[job_type] = Handler(job_type, func, timeout_seconds, check)
            return func

        return decorate

    def unregister(self, job_type: str) -> None:
        self._handlers.pop(job_type, None)

    def get(self, job_type: str) -> Handler | None:
        return self._handlers.get(job_type)

    def all(self) -> list[Handler]:
        return sorted(self._handlers.values(), key=lambda h: h.job_type)


registry = Registry()
job_handler = registry.register
