"""What a handler gets besides its input, and nothing more: which job and attempt it runs, how
long it has, a logger, a call to the database's SQL functions, and lease renewal. Never the
worker's settings or secrets: a handler's own configuration is its own."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobqueue import log
from jobqueue.store.base import Json
from jobqueue.worker.outcomes import JobTimeout as JobTimeout
from jobqueue.worker.outcomes import SnoozeJob

if TYPE_CHECKING:
    from jobqueue.store.base import ClaimedJob, QueueStore


@dataclass
class JobContext:
    """``deadline`` (``time.monotonic()`` seconds) is when the handler is stopped: its own time
    limit, or the end of its lease if that comes first. Renewing the lease moves it, up to
    ``limit_at``, the handler's own limit."""

    job: ClaimedJob
    deadline: float
    limit_at: float
    _store: QueueStore
    lease_seconds: int
    lease_margin: float

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    def call(self, function: str, **args: Any) -> list[dict[str, Any]]:
        """``public.<function>(name => value, ...)``: the SQL functions of the handler's own
        migration (and the queue's), over whichever store the worker uses (psycopg or
        PostgREST). Objects, and lists of objects, are passed as jsonb."""
        wrapped = {name: Json(value) if _is_json(value) else value for name, value in args.items()}
        return self._store.call(function, wrapped)

    def log(self, message: str, **fields: Any) -> None:
        """One JSON log line quoting the job; pass identifiers and measurements, never the
        job's input or a secret."""
        log.log_event(
            "INFO",
            message,
            job_id=self.job.id,
            type=self.job.type,
            attempt=self.job.attempt,
            **fields,
        )

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

    def acquire(self, key: str, requests: int = 1, tokens: int = 0) -> None:
        """Starts ``requests`` requests and ``tokens`` tokens under ``key``'s limits, which
        every worker shares (``rate_limits``; a key without a row has none). A short wait
        (at most ``SHORT_WAIT_SECONDS`` and within the handler's time) is slept here; a longer
        one snoozes the job until the budget has room, which costs no attempt. Asking for more
        than a whole minute's budget raises the database's error."""
        while True:
            rows = self.call("acquire_rate", p_key=key, p_requests=requests, p_tokens=tokens)
            ready = _instant(rows[0]["value"] if rows else None)
            if ready is None:
                return
            wait = max(0.0, (ready - datetime.now(UTC)).total_seconds())
            if wait > SHORT_WAIT_SECONDS or wait > self.time_left() - self.lease_margin:
                raise SnoozeJob(wait, f"rate limit {key}: budget spent, back in {wait:.1f} s")
            self.sleep(wait + 0.01)

    def extend_lease(self, seconds: int | None = None) -> bool:
        """Keeps the job leased ``seconds`` more (default JOB_LEASE_SECONDS) and moves the
        deadline with it; false once the lease is lost to another worker."""
        seconds = seconds or self.lease_seconds
        if self.job.id not in self._store.extend_leases([self.job], seconds):
            return False
        renewed = time.monotonic() + seconds - self.lease_margin
        self.deadline = max(self.deadline, min(self.limit_at, renewed))
        return True


# The longest wait for a rate budget a handler spends asleep; longer ones snooze the job.
SHORT_WAIT_SECONDS = 5.0


def _instant(value: Any) -> datetime | None:
    """A timestamptz from either store: a datetime (psycopg) or ISO text (PostgREST)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _is_json(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(item, dict | list) for item in value)
    )
