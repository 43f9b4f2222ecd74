"""What one worker_pull call holds, and how long each of its jobs may run under its lease.

Two regimes. With the lease guardian alive (``guardian.py``, a process of its own), every claim
the call holds is renewed from outside, so a handler's limit is its own and the lease only
measures how soon a dead worker's jobs are taken over. Without it (the guardian could not
start), a handler's limit never passes the lease: the waiting jobs of a batch are renewed
before each job that would outrun theirs, and ``JOB_LEASE_SECONDS`` is how long a job may run
before another worker may take it (a handler that needs longer calls ``ctx.extend_lease()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jobqueue.store.base import ClaimedJob, QueueStore
from jobqueue.worker.guardian import Guardian

# Time kept between a handler's deadline and the end of its lease (a tenth of short leases);
# a fresh lease covers the longest limit with two of these to spare, so it needs no renewal.
LEASE_MARGIN_SECONDS = 5.0


def lease_margin_seconds(lease_seconds: int) -> float:
    return min(LEASE_MARGIN_SECONDS, lease_seconds / 10)


class CallLeases:
    def __init__(
        self,
        store: QueueStore,
        guardian: Guardian | None,
        lease_seconds: int,
        handler_limit_seconds: Callable[[ClaimedJob], float],
        clock: Callable[[], float],
        deadline: float,
    ) -> None:
        self._store = store
        self._guardian = guardian
        self._lease_seconds = lease_seconds
        self._margin_seconds = lease_margin_seconds(lease_seconds)
        self._handler_limit_seconds = handler_limit_seconds
        self._clock = clock
        self._deadline = deadline
        # Claimed by this call and not yet committed or given back.
        self._open: dict[int, ClaimedJob] = {}
        # When the current batch's leases run out, by this process's clock (the claim set them).
        self._leased_until = 0.0

    def hold(self, batch: Sequence[ClaimedJob]) -> None:
        """A freshly claimed batch: held until settled, renewed by the guardian meanwhile up
        to the call's budget plus the longest handler limit in it."""
        self._leased_until = self._clock() + self._lease_seconds
        for job in batch:
            self._open[job.id] = job
        if self._guardian is not None and batch:
            longest = max(self._handler_limit_seconds(job) for job in batch)
            seconds_left = self._deadline - self._clock()
            self._guardian.hold(batch, seconds_left + longest + self._lease_seconds)

    def settled(self, jobs: Sequence[ClaimedJob]) -> None:
        """Committed or given back: no longer this call's to renew."""
        for job in jobs:
            self._open.pop(job.id, None)
        if self._guardian is not None:
            self._guardian.drop(jobs)

    def abandon(self) -> None:
        """The call failed mid-way (the database went away, or worse): what it still holds
        goes to the guardian, which expires those leases as soon as the database answers."""
        if self._guardian is not None:
            self._guardian.abandon(list(self._open.values()))

    def limit_seconds(self, job: ClaimedJob) -> float:
        """How long the job's handler may run now: its own limit under the guardian, else
        no longer than a lease leaves room for."""
        if self._guarded():
            return self._handler_limit_seconds(job)
        wanted = self._handler_limit_seconds(job)
        return min(wanted, self._lease_seconds - 2 * self._margin_seconds)

    def ready(self, job: ClaimedJob, waiting: Sequence[ClaimedJob], limit_seconds: float) -> bool:
        """Whether ``job`` (the first of ``waiting``) is still this call's to run for
        ``limit_seconds``. Without the guardian, the leases of the jobs still waiting are
        renewed first when the batch's would run out; one lost meanwhile is skipped."""
        if self._guarded():
            return True
        if self._leased_until - self._clock() >= limit_seconds + self._margin_seconds:
            return True
        held = self._store.extend_leases(waiting, self._lease_seconds)
        self._leased_until = self._clock() + self._lease_seconds
        return job.id in held

    def _guarded(self) -> bool:
        return self._guardian is not None and self._guardian.alive
