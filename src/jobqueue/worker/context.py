"""What a handler gets besides its input: who it is, how long it has, and the queue's store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobqueue.settings import WorkerSettings
    from jobqueue.store.base import ClaimedJob, QueueStore


class JobTimeout(Exception):
    """The handler ran past its time limit; the attempt fails and is retried."""


@dataclass
class JobContext:
    """``deadline`` (``time.monotonic()`` seconds) is when the handler is stopped: its own time
    limit, or the end of its lease if that comes first. Renewing the lease moves it, up to
    ``limit_at``, the handler's own limit."""

    job: ClaimedJob
    deadline: float
    limit_at: float
    store: QueueStore
    settings: WorkerSettings
    lease_seconds: int
    lease_margin: float

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        """Long handlers call this between steps so they stop promptly when out of time."""
        if self.time_left() <= 0:
            raise JobTimeout(f"job {self.job.id} ran past its time limit")

    def sleep(self, seconds: float) -> None:
        """Sleeps, renewing the lease as the sleep goes on (a sleeping handler is alive), but
        never past the handler's own time limit: then it raises ``JobTimeout``. It wakes a
        little before each deadline to renew, so the watchdog never finds it asleep past one."""
        guard = self.lease_margin / 2
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.time_left() - guard < left and self.deadline < self.limit_at:
                self.extend_lease()
            if self.time_left() <= 0:
                raise JobTimeout(f"job {self.job.id} ran past its time limit")
            nap = self.time_left() - (0.0 if self.deadline >= self.limit_at else guard)
            time.sleep(max(0.0, min(left, nap)))
        self.check_deadline()

    def extend_lease(self, seconds: int | None = None) -> bool:
        """Keeps the job leased ``seconds`` more (default JOB_LEASE_SECONDS) and moves the
        deadline with it; false once the lease is lost to another worker."""
        seconds = seconds or self.lease_seconds
        if self.job.id not in self.store.extend_leases([self.job], seconds):
            return False
        renewed = time.monotonic() + seconds - self.lease_margin
        self.deadline = max(self.deadline, min(self.limit_at, renewed))
        return True
