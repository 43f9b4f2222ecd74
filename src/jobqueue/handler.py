"""The handler API: all that the code of a job type needs, in one import.

    from jobqueue.handler import JobContext, PermanentJobError, job_handler

    @job_handler("resize_image", timeout_seconds=120)
    def resize_image(input: dict, ctx: JobContext) -> dict:
        ctx.acquire("images-api")            # the provider's shared limits (rate_limits)
        ...
        return {"width": 800}

A handler returns a JSON-able output, stored on the job. Its outcomes are exceptions, all
under :class:`JobError`: ``PermanentJobError`` fails the job now, ``RetryJobError`` retries it
after a delay, ``SnoozeJob`` puts it back for a while without spending an attempt, and
``JobTimeout`` is what the worker raises in a handler past its time limit. Anything else is
retried with backoff until ``max_attempts``.

``ctx.call`` raises :class:`DatabaseError` (its ``sqlstate`` and the database's own message)
for an error a SQL function raises, on either store; it is not an outcome, so a handler that
does not catch it has its attempt retried.
"""

from jobqueue.store.base import DatabaseError
from jobqueue.worker.context import JobContext, JobTimeout
from jobqueue.worker.registry import (
    JobError,
    PermanentJobError,
    RetryJobError,
    SnoozeJob,
    job_handler,
)

__all__ = [
    "DatabaseError",
    "JobContext",
    "JobError",
    "JobTimeout",
    "PermanentJobError",
    "RetryJobError",
    "SnoozeJob",
    "job_handler",
]
