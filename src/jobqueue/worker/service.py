"""One worker_pull call: claim jobs in batches, run their handlers, record the outcomes.

Round trips, not handlers, bound a fast queue, so a call claims as many jobs as it expects to
finish within its budget in one statement and records their outcomes in one statement (one
commit) per batch. A job is reported ``done`` only after that commit. Batches adapt to the job
durations this instance has seen: slow jobs are claimed one at a time, and jobs claimed but not
started are given back at once when the budget runs out or a job turns out slow.

The call's loop is here; its other jobs each have a module: running one job
(``execution``), the leases it holds (``leases``), outcomes awaiting their commit
(``outcome_buffer``) and the answer and log lines (``report``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from jobqueue import timing
from jobqueue.settings import WorkerSettings
from jobqueue.store.base import ClaimedJob, QueueStore
from jobqueue.worker.execution import Executor
from jobqueue.worker.guardian import Guardian
from jobqueue.worker.leases import CallLeases, lease_margin_seconds
from jobqueue.worker.models import PullRequest
from jobqueue.worker.outcome_buffer import Claim, OutcomeBuffer, Settled
from jobqueue.worker.registry import Registry
from jobqueue.worker.report import CallReport

# A job slower than this makes the rest of its batch go back to the queue for other workers.
SLOW_JOB_SECONDS = 0.5


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
        # Renews the lease of a handler stuck past its deadline; its own connection, since
        # the stuck handler may hold the main one.
        self._open_lease_keeper = open_lease_keeper
        self._lease_keeper: QueueStore | None = None
        self._keeper_lock = threading.Lock()
        self._settings = settings
        self._clock = clock
        self._executor = Executor(
            registry,
            settings,
            store,
            self._keeper,
            lease_margin_seconds(settings.job_lease_seconds),
            clock,
        )
        self._worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Moving average of handler seconds per job, shared by the calls of a warm instance;
        # None until the first job, so a cold instance claims one job to learn.
        self._mean_job_seconds: float | None = None

    def pull(self, request: PullRequest) -> dict[str, Any]:
        started = self._clock()
        budget_seconds = (
            request.time_budget_ms / 1000.0
            if request.time_budget_ms is not None
            else self._settings.worker_pull_time_budget_seconds
        )
        call = _Call(self, request, started + budget_seconds)
        call.run()
        return {
            "processed": len(call.report.jobs),
            "jobs": call.report.jobs,
            "queue_empty": call.queue_empty,
        }

    def close(self) -> None:
        self._store.close()
        if self._lease_keeper is not None:
            self._lease_keeper.close()

    def _keeper(self) -> QueueStore:
        with self._keeper_lock:
            if self._lease_keeper is None:
                opener = self._open_lease_keeper
                self._lease_keeper = opener() if opener is not None else self._store
            return self._lease_keeper

    def _batch_size(self, seconds_left: float, jobs_left: int) -> int:
        if self._mean_job_seconds is None:
            return 1
        fits = int(seconds_left / max(self._mean_job_seconds, 1e-5))
        return max(1, min(jobs_left, fits))

    def _observe(self, seconds: float) -> None:
        mean = self._mean_job_seconds
        self._mean_job_seconds = seconds if mean is None else 0.8 * mean + 0.2 * seconds


class _Call:
    """The loop of one pull: claim a batch, run it, give back what it cannot start."""

    def __init__(self, service: WorkerService, request: PullRequest, deadline: float) -> None:
        self.service = service
        self.store = service._store
        self.clock = service._clock
        self.request = request
        self.deadline = deadline
        self.executor = service._executor
        self.leases = CallLeases(
            self.store,
            service._guardian,
            service._settings.job_lease_seconds,
            self.executor.handler_limit_seconds,
            self.clock,
            deadline,
        )
        self.buffer = OutcomeBuffer(self.store, service._worker_id, self.clock)
        self.report = CallReport()
        self.queue_empty = False
        self.taken = 0

    def run(self) -> None:
        try:
            try:
                while self.taken < self.request.max_jobs and self.clock() < self.deadline:
                    want = self.service._batch_size(
                        self.deadline - self.clock(), self.request.max_jobs - self.taken
                    )
                    # The last batch's outcomes are committed with this claim.
                    claim = Claim(
                        want, self.service._settings.job_lease_seconds, self.request.job_types
                    )
                    with timing.stage("finish_claim" if self.buffer.pending else "claim"):
                        settled, batch = self.buffer.flush_and_claim(claim)
                    self.settle(settled)
                    self.leases.hold(batch)
                    self.taken += len(batch)
                    if len(batch) < want:
                        self.queue_empty = True
                    self.run_batch(batch)
                    if self.queue_empty:
                        break
            finally:
                self.flush()
        except BaseException:
            self.leases.abandon()
            raise

    def run_batch(self, batch: Sequence[ClaimedJob]) -> None:
        for index, job in enumerate(batch):
            # A batch's first job was claimed within the budget, and runs; the rest wait for
            # it and go back once the budget has passed (the claim may have carried the last
            # batch's outcomes, so it can end a little after the budget).
            if index > 0 and self.clock() >= self.deadline:
                self.give_back(batch[index:])
                return
            limit_seconds = self.leases.limit_seconds(job)
            if not self.leases.ready(job, batch[index:], limit_seconds):
                continue
            if self.buffer.overdue():
                self.flush()
            outcome = self.executor.execute(job, limit_seconds)
            timing.add("handlers", outcome.duration_ms / 1000.0)
            self.service._observe(outcome.duration_ms / 1000.0)
            self.buffer.add(outcome)
            if outcome.duration_ms / 1000.0 > SLOW_JOB_SECONDS and index + 1 < len(batch):
                self.give_back(batch[index + 1 :])
                return

    def give_back(self, jobs: Sequence[ClaimedJob]) -> None:
        if jobs:
            with timing.stage("release"):
                self.store.release(jobs)
            self.leases.settled(jobs)
            self.taken -= len(jobs)

    def flush(self) -> None:
        with timing.stage("finish"):
            settled = self.buffer.flush()
        self.settle(settled)

    def settle(self, settled: Settled) -> None:
        """Committed: no longer this call's to renew, and reported."""
        if settled:
            self.leases.settled([outcome.job for outcome, _ in settled])
            with timing.stage("report"):
                self.report.add(settled)
