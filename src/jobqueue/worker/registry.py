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

if TYPE_CHECKING:
    from jobqueue.worker.context import JobContext

HandlerFunc = Callable[[Any, "JobContext"], Any]


class JobError(Exception):
    """The root of every outcome a handler raises on purpose (``jobqueue.handler``)."""


class PermanentJobError(JobError):
    """The job can never succeed (bad input, missing object): fail it now, with no retry."""


class SnoozeJob(JobError):
    """Not now, and not a failure: the job goes back to the queue for ``seconds`` without
    spending an attempt (a provider's rate limit, a resource that is not ready yet). A job may
    snooze at most 1,000 times; then it fails for good, saying so."""

    def __init__(self, seconds: float, reason: str = "snoozed") -> None:
        super().__init__(reason)
        self.seconds = seconds


class RetryJobError(JobError):
    """Retry after ``retry_in_seconds`` (e.g. a peer's Retry-After), capped by
    JOB_MAX_RETRY_DELAY_SECONDS; with None, after the queue's own backoff (with jitter)."""

    def __init__(self, message: str, retry_in_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_in_seconds = retry_in_seconds


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
