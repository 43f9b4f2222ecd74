"""What a handler raises on purpose, under one root: the job's outcome, not a crash."""

from __future__ import annotations


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


class JobTimeout(JobError):
    """The handler ran past its time limit; the attempt fails and is retried."""
