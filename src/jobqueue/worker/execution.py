"""Runs one claimed job's handler and turns whatever it does into an :class:`Outcome`.

Every way a handler can end maps to exactly one outcome: a return value (stored if jsonb can
hold it), one of the handler API's exceptions (``jobqueue.handler``), a time-out, or anything
else at all, ``SystemExit`` included, which ends only this attempt, never the request or the
server. The error text stored on the job is always text PostgreSQL accepts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

from jobqueue import timing
from jobqueue.jsonsafe import jsonb_problem, storable_text
from jobqueue.settings import WorkerSettings
from jobqueue.store.base import ClaimedJob, Outcome, QueueStore
from jobqueue.worker.context import JobContext, JobTimeout
from jobqueue.worker.registry import (
    JobError,
    PermanentJobError,
    Registry,
    RetryJobError,
    SnoozeJob,
)
from jobqueue.worker.runner import run_with_limit

# A snooze is capped like the database caps it: a day (finish_jobs takes snooze_ms up to
# 86,400,000).
MAX_SNOOZE_SECONDS = 86_400.0


class Executor:
    def __init__(
        self,
        registry: Registry,
        settings: WorkerSettings,
        store: QueueStore,
        lease_keeper: Callable[[], QueueStore],
        lease_margin_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._store = store
        # Renews the lease of a handler stuck past its deadline, on a connection of its own.
        self._lease_keeper = lease_keeper
        self._margin_seconds = lease_margin_seconds
        self._clock = clock
        self._pid = os.getpid()

    def handler_limit_seconds(self, job: ClaimedJob) -> float:
        """The limit the job's handler asks for, else JOB_HANDLER_TIMEOUT_SECONDS."""
        handler = self._registry.get(job.type)
        if handler is not None and handler.timeout_seconds is not None:
            return handler.timeout_seconds
        return self._settings.job_handler_timeout_seconds

    def execute(self, job: ClaimedJob, limit_seconds: float) -> Outcome:
        """Runs the job for at most ``limit_seconds``; the outcome carries its duration."""
        began = self._clock()
        outcome = self._run(job, began, limit_seconds)
        return dataclasses.replace(outcome, duration_ms=(self._clock() - began) * 1000.0)

    def _run(self, job: ClaimedJob, began: float, limit_seconds: float) -> Outcome:
        handler = self._registry.get(job.type)
        if handler is None:
            error = f"no handler registered for job type {job.type!r}"
            return Outcome(job, ok=False, permanent=True, error=error)
        lease_seconds = self._settings.job_lease_seconds
        context = JobContext(
            job,
            deadline=began + limit_seconds,
            limit_at=began + self.handler_limit_seconds(job),
            _store=self._store,
            lease_seconds=lease_seconds,
            lease_margin=self._margin_seconds,
        )
        try:
            output = run_with_limit(
                lambda: self._contained(handler.func, job.input, context),
                lambda: context.deadline,
                keep_alive=lambda: self._lease_keeper().extend_leases([job], lease_seconds),
                keep_every=max(0.2, lease_seconds / 3),
            )
        except JobTimeout as exc:
            # It may have been interrupted inside a store call: start that connection afresh.
            self._store.discard_connection()
            return Outcome(job, ok=False, error=f"timeout: {exc}")
        except PermanentJobError as exc:
            return Outcome(job, ok=False, permanent=True, error=describe(exc))
        except SnoozeJob as exc:
            snooze_ms = capped_ms(exc.seconds, MAX_SNOOZE_SECONDS)
            return Outcome(job, ok=False, error=describe(exc), snooze_ms=snooze_ms or 0)
        except RetryJobError as exc:
            cap = self._settings.job_max_retry_delay_seconds
            retry_in_ms = capped_ms(exc.retry_in_seconds, cap)
            return Outcome(job, ok=False, error=describe(exc), retry_in_ms=retry_in_ms)
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... from a
            # handler end its attempt, never the request or the server; retried with backoff.
            return Outcome(job, ok=False, error=describe(exc))
        with timing.stage("check"):  # part of the job's duration, and of "handlers"
            problem = jsonb_problem(output)
        if problem:
            error = f"handler output cannot be stored as JSON: it {problem}"
            return Outcome(job, ok=False, permanent=True, error=error)
        return Outcome(job, ok=True, output=output)

    def _contained(
        self, func: Callable[[Any, JobContext], Any], input: Any, ctx: JobContext
    ) -> Any:
        """A handler that forked and returns (or raises) in the child must not go on as a
        second copy of this worker: the child ends here, silently."""
        try:
            return func(input, ctx)
        finally:
            if os.getpid() != self._pid:
                os._exit(0)


def capped_ms(seconds: float | None, cap_seconds: float) -> int | None:
    """A handler's requested delay (often a peer's Retry-After, which the peer chose), capped;
    None (the queue's backoff) for one that is not a number."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return None
    return int(min(max(0.0, seconds), cap_seconds) * 1000)


def describe(exc: BaseException) -> str:
    """The error stored on the job: always text PostgreSQL accepts, whatever the handler
    put in its exception."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ still leaves the type's name
        text = ""
    # A handler's own outcome (PermanentJobError, RetryJobError, a timeout) says why in its
    # message; any other exception's type is part of the reason (KeyError: 'x').
    if isinstance(exc, JobError) and text:
        described = text
    else:
        described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return storable_text(described[:8000])
