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
    job: ClaimedJob
    deadline: float
    store: QueueStore
    settings: WorkerSettings
    lease_seconds: int

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
        """Sleeps, but never past the deadline."""
        left = self.time_left()
        if seconds >= left:
            time.sleep(max(0.0, left))
            raise JobTimeout(f"job {self.job.id} ran past its time limit")
        time.sleep(seconds)

    def extend_lease(self, seconds: int | None = None) -> bool:
        """Keeps the job leased for a handler that needs longer; false once the lease is lost."""
        return self.job.id in self.store.extend_leases([self.job], seconds or self.lease_seconds)
