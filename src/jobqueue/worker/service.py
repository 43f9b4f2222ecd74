"""One worker_pull call: claim jobs in batches, run their handlers, record the outcomes.

Round trips, not handlers, bound a fast queue, so a call claims as many jobs as it expects to
finish within its budget in one statement and records their outcomes in one statement (one
commit) per batch. A job is reported ``done`` only after that commit. Batches adapt to the job
durations this instance has seen: slow jobs are claimed one at a time, and jobs claimed but not
started are given back at once when the budget runs out or a job turns out slow.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from jobqueue import log
from jobqueue.jsonsafe import jsonb_problem, storable_text
from jobqueue.settings import WorkerSettings
from jobqueue.store.base import ClaimedJob, Finished, Outcome, QueueStore, RejectedByDatabase
from jobqueue.worker.context import JobContext, JobTimeout
from jobqueue.worker.guardian import Guardian
from jobqueue.worker.models import PullRequest
from jobqueue.worker.registry import (
    JobError,
    PermanentJobError,
    Registry,
    RetryJobError,
    SnoozeJob,
)
from jobqueue.worker.runner import run_with_limit

# A job slower than this makes the rest of its batch go back to the queue for other workers.
SLOW_JOB_SECONDS = 0.5
# Outcomes wait at most this long before they are committed, so a crash loses little work.
FLUSH_SECONDS = 0.25
# Time kept between a handler's deadline and the end of its lease (a tenth of short leases);
# a fresh lease covers the longest limit with two of these to spare, so it needs no renewal.
LEASE_MARGIN_SECONDS = 5.0


class WorkerService:
    def __init__(
        self,
        store: QueueStore,
        registry: Registry,
        settings: WorkerSettings,
        clock: Callable[[], float] = time.monotonic,
        open_lease_keeper: Callable[[], QueueStore] | None = None,
        guardian: Guardian | None = None,
    ) -> None:
        self._store = store
        # Renews every claim this process holds from another process (see guardian.py).
        self._guardian = guardian
        self._pid = os.getpid()
        # Renews the lease of a handler stuck past its deadline; its own connection, since
        # the stuck handler may hold the main one.
        self._open_lease_keeper = open_lease_keeper
        self._lease_keeper: QueueStore | None = None
        self._keeper_lock = threading.Lock()
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Moving average of handler seconds per job, shared by the calls of a warm instance;
        # None until the first job, so a cold instance claims one job to learn.
        self._mean_job_seconds: float | None = None

    def pull(self, request: PullRequest) -> dict[str, Any]:
        started = self._clock()
        budget = (
            request.time_budget_ms / 1000.0
            if request.time_budget_ms is not None
            else self._settings.worker_pull_time_budget_seconds
        )
        call = _Call(self, request, started + budget)
        call.run()
        return {
            "processed": len(call.reported),
            "jobs": call.reported,
            "queue_empty": call.queue_empty,
        }

    def close(self) -> None:
        self._store.close()
        if self._lease_keeper is not None:
            self._lease_keeper.close()

    def lease_keeper(self) -> QueueStore:
        with self._keeper_lock:
            if self._lease_keeper is None:
                opener = self._open_lease_keeper
                self._lease_keeper = opener() if opener is not None else self._store
            return self._lease_keeper

    def batch_size(self, seconds_left: float, jobs_left: int) -> int:
        if self._mean_job_seconds is None:
            return 1
        fits = int(seconds_left / max(self._mean_job_seconds, 1e-5))
        return max(1, min(jobs_left, fits))

    def observe(self, seconds: float) -> None:
        mean = self._mean_job_seconds
        self._mean_job_seconds = seconds if mean is None else 0.8 * mean + 0.2 * seconds


class _Call:
    """The state of one pull: what is claimed, what awaits its commit, what was reported."""

    def __init__(self, service: WorkerService, request: PullRequest, deadline: float) -> None:
        self.service = service
        self.store = service._store
        self.clock = service._clock
        self.request = request
        self.deadline = deadline
        self.lease = service._settings.job_lease_seconds
        # Time kept between a handler's deadline and its lease's end.
        self.margin = min(LEASE_MARGIN_SECONDS, self.lease / 10)
        self.pending: list[Outcome] = []
        self.pending_since = 0.0
        self.reported: list[dict[str, Any]] = []
        self.queue_empty = False
        self.taken = 0
        self.guardian = service._guardian
        # Claimed by this call and not yet committed or given back.
        self.open: dict[int, ClaimedJob] = {}

    def run(self) -> None:
        try:
            try:
                while self.taken < self.request.max_jobs and self.clock() < self.deadline:
                    want = self.service.batch_size(
                        self.deadline - self.clock(), self.request.max_jobs - self.taken
                    )
                    batch = self.store.claim(
                        self.service._worker_id, want, self.lease, self.request.job_types
                    )
                    self.hold(batch)
                    self.taken += len(batch)
                    if len(batch) < want:
                        self.queue_empty = True
                    self.run_batch(batch)
                    if self.queue_empty:
                        break
            finally:
                self.flush()
        except BaseException:
            # The database went away mid-call (or worse): what this call still holds goes to
            # the guardian, which expires those leases as soon as the database answers again.
            if self.guardian is not None:
                self.guardian.abandon(list(self.open.values()))
            raise

    def hold(self, batch: Sequence[ClaimedJob]) -> None:
        for job in batch:
            self.open[job.id] = job
        if self.guardian is not None and batch:
            longest = max(self.wanted_limit(job) for job in batch)
            self.guardian.hold(batch, (self.deadline - self.clock()) + longest + self.lease)

    def settled(self, jobs: Sequence[ClaimedJob]) -> None:
        for job in jobs:
            self.open.pop(job.id, None)
        if self.guardian is not None:
            self.guardian.drop(jobs)

    def run_batch(self, batch: Sequence[ClaimedJob]) -> None:
        # When the batch's leases run out, by this process's clock (the claim set them).
        leased_until = self.clock() + self.lease
        for index, job in enumerate(batch):
            rest = batch[index:]
            if self.clock() >= self.deadline:
                self.give_back(rest)
                return
            limit = self.time_limit(job)
            if not self.guarded() and leased_until - self.clock() < limit + self.margin:
                # Renew the leases of the jobs still waiting, so this one can run its limit.
                held = self.store.extend_leases(rest, self.lease)
                leased_until = self.clock() + self.lease
                if job.id not in held:
                    continue
            if self.pending and self.clock() - self.pending_since > FLUSH_SECONDS:
                self.flush()
            outcome = self.execute(job, limit)
            if not self.pending:
                self.pending_since = self.clock()
            self.pending.append(outcome)
            if outcome.duration_ms / 1000.0 > SLOW_JOB_SECONDS and index + 1 < len(batch):
                self.give_back(batch[index + 1 :])
                return

    def wanted_limit(self, job: ClaimedJob) -> float:
        handler = self.service._registry.get(job.type)
        if handler is not None and handler.timeout_seconds is not None:
            return handler.timeout_seconds
        return self.service._settings.job_handler_timeout_seconds

    def guarded(self) -> bool:
        return self.guardian is not None and self.guardian.alive

    def time_limit(self, job: ClaimedJob) -> float:
        """The handler's own limit. With the guardian renewing this process's leases, the
        lease only measures how soon a dead worker's jobs are taken over. Without it the
        limit never passes the lease: JOB_LEASE_SECONDS is then how long a job may run before
        another worker may take it, and a handler that needs longer renews its lease with
        ``ctx.extend_lease()``, which moves its deadline too."""
        if self.guarded():
            return self.wanted_limit(job)
        return min(self.wanted_limit(job), self.lease - 2 * self.margin)

    def execute(self, job: ClaimedJob, limit: float) -> Outcome:
        began = self.clock()
        handler = self.service._registry.get(job.type)
        if handler is None:
            error = f"no handler registered for job type {job.type!r}"
            return self.measured(Outcome(job, ok=False, permanent=True, error=error), began)
        context = JobContext(
            job,
            deadline=began + limit,
            limit_at=began + self.wanted_limit(job),
            _store=self.store,
            lease_seconds=self.lease,
            lease_margin=self.margin,
        )
        try:
            output = run_with_limit(
                lambda: self.contained(handler.func, job.input, context),
                lambda: context.deadline,
                keep_alive=lambda: self.service.lease_keeper().extend_leases([job], self.lease),
                keep_every=max(0.2, self.lease / 3),
            )
        except JobTimeout as exc:
            # It may have been interrupted inside a store call: start that connection afresh.
            self.store.discard_connection()
            outcome = Outcome(job, ok=False, error=f"timeout: {exc}")
        except PermanentJobError as exc:
            outcome = Outcome(job, ok=False, permanent=True, error=_describe(exc))
        except SnoozeJob as exc:
            snooze_ms = _retry_ms(exc.seconds, MAX_SNOOZE_SECONDS)
            outcome = Outcome(job, ok=False, error=_describe(exc), snooze_ms=snooze_ms or 0)
        except RetryJobError as exc:
            outcome = Outcome(
                job,
                ok=False,
                error=_describe(exc),
                retry_in_ms=_retry_ms(
                    exc.retry_in_seconds, self.service._settings.job_max_retry_delay_seconds
                ),
            )
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... from a
            # handler end its attempt, never the request or the server; retried with backoff.
            outcome = Outcome(job, ok=False, error=_describe(exc))
        else:
            problem = jsonb_problem(output)
            if problem:
                error = f"handler output cannot be stored as JSON: it {problem}"
                outcome = Outcome(job, ok=False, permanent=True, error=error)
            else:
                outcome = Outcome(job, ok=True, output=output)
        return self.measured(outcome, began)

    def contained(self, func: Callable[[Any, JobContext], Any], input: Any, ctx: JobContext) -> Any:
        """A handler that forked and returns (or raises) in the child must not go on as a
        second copy of this worker: the child ends here, silently."""
        try:
            return func(input, ctx)
        finally:
            if os.getpid() != self.service._pid:
                os._exit(0)

    def measured(self, outcome: Outcome, began: float) -> Outcome:
        seconds = self.clock() - began
        self.service.observe(seconds)
        return dataclasses.replace(outcome, duration_ms=seconds * 1000.0)

    def give_back(self, jobs: Sequence[ClaimedJob]) -> None:
        if jobs:
            self.store.release(jobs)
            self.settled(jobs)
            self.taken -= len(jobs)

    def flush(self) -> None:
        if not self.pending:
            return
        outcomes, self.pending = self.pending, []
        worker = self.service._worker_id
        try:
            finished = self.store.finish(outcomes, worker)
        except RejectedByDatabase:
            # One outcome the database cannot take must not sink its batch: record them one
            # by one, and fail for good (with the reason) any that is refused on its own.
            outcomes, finished = self.finish_one_by_one(outcomes)
        self.settled([outcome.job for outcome in outcomes])
        by_id = {f.id: f for f in finished}
        log.write([self.report(outcome, by_id.get(outcome.job.id)) for outcome in outcomes])

    def finish_one_by_one(
        self, outcomes: Sequence[Outcome]
    ) -> tuple[list[Outcome], list[Finished]]:
        kept: list[Outcome] = []
        finished: list[Finished] = []
        for outcome in outcomes:
            try:
                finished += self.store.finish([outcome], self.service._worker_id)
            except RejectedByDatabase as exc:
                error = f"the job's outcome could not be stored: {exc}"
                outcome = dataclasses.replace(
                    outcome,
                    ok=False,
                    output=None,
                    permanent=True,
                    retry_in_ms=None,
                    error=storable_text(error),
                )
                finished += self.store.finish([outcome], self.service._worker_id)
            kept.append(outcome)
        return kept, finished

    def report(self, outcome: Outcome, finished: Finished | None) -> dict[str, Any]:
        """Adds the job to the answer; returns its log record."""
        job = outcome.job
        status = finished.status if finished else "unknown"
        error = finished.error if finished else outcome.error
        duration_ms = round(outcome.duration_ms, 3)
        snoozed = outcome.snooze_ms is not None and status == "queued"
        entry: dict[str, Any] = {
            "id": job.id,
            "type": job.type,
            "status": status,
            "attempts": job.attempt,
            "error": None if snoozed else error,
            "duration_ms": duration_ms,
        }
        if snoozed:
            entry["snoozed"] = True
        self.reported.append(entry)
        return log.record(
            "INFO" if status == "done" else "WARNING",
            "job finished",
            job_id=job.id,
            type=job.type,
            attempt=job.attempt,
            outcome=status,
            accepted=finished.accepted if finished else False,
            duration_ms=duration_ms,
            # Why it failed: the handler's error, never the job's input.
            **({"error": error} if status != "done" and error else {}),
        )


# A snooze is capped like the database caps it: a day (CONTRACT: snooze_ms up to 86,400,000).
MAX_SNOOZE_SECONDS = 86_400.0


def _retry_ms(seconds: float | None, cap_seconds: float) -> int | None:
    """A handler's requested retry delay (often a peer's Retry-After, which the peer chose),
    capped; None (the queue's backoff) for one that is not a number."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return None
    return int(min(max(0.0, seconds), cap_seconds) * 1000)


def _describe(exc: BaseException) -> str:
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
