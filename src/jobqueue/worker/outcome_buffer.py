"""Outcomes waiting for their commit: a batch's outcomes are written in one ``finish_jobs``
statement, and none waits longer than ``FLUSH_SECONDS``, so a crash loses little work. When the
worker's next step is a claim, the outcomes go with it (``finish_and_claim_jobs``): one round
trip and one commit per batch instead of two.

One outcome the database cannot take (a value jsonb refuses that the checks let through) must
not sink its batch: the outcomes are then written one by one, and any refused on its own fails
for good, with the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jobqueue.jsonsafe import storable_text
from jobqueue.store.base import ClaimedJob, Finished, Outcome, QueueStore, RejectedByDatabase

FLUSH_SECONDS = 0.25

Settled = list[tuple[Outcome, Finished | None]]


@dataclass(frozen=True)
class Claim:
    """The claim to make once the outcomes are recorded."""

    limit: int
    lease_seconds: int
    types: Sequence[str] | None


class OutcomeBuffer:
    def __init__(self, store: QueueStore, worker_id: str, clock: Callable[[], float]) -> None:
        self._store = store
        self._worker_id = worker_id
        self._clock = clock
        self._pending: list[Outcome] = []
        self._pending_since = 0.0

    def add(self, outcome: Outcome) -> None:
        if not self._pending:
            self._pending_since = self._clock()
        self._pending.append(outcome)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def overdue(self) -> bool:
        return bool(self._pending) and self._clock() - self._pending_since > FLUSH_SECONDS

    def flush(self) -> Settled:
        """Commits what is pending; each outcome as recorded, with the job's state after it
        (None when the database returned no row for it)."""
        if not self._pending:
            return []
        outcomes, self._pending = self._pending, []
        try:
            finished = self._store.finish(outcomes, self._worker_id)
        except RejectedByDatabase:
            outcomes, finished = self._finish_one_by_one(outcomes)
        return _settled(outcomes, finished)

    def flush_and_claim(self, claim: Claim) -> tuple[Settled, list[ClaimedJob]]:
        """Commits what is pending and makes ``claim`` in the same round trip; with nothing
        pending, only the claim. When the database refuses an outcome, nothing of the call was
        committed: the outcomes go one by one, then the claim alone."""
        claim_args = (self._worker_id, claim.limit, claim.lease_seconds, claim.types)
        if not self._pending:
            return [], self._store.claim(*claim_args)
        outcomes, self._pending = self._pending, []
        try:
            finished, claimed = self._store.finish_and_claim(outcomes, *claim_args)
        except RejectedByDatabase:
            outcomes, finished = self._finish_one_by_one(outcomes)
            claimed = self._store.claim(*claim_args)
        return _settled(outcomes, finished), claimed

    def _finish_one_by_one(
        self, outcomes: Sequence[Outcome]
    ) -> tuple[list[Outcome], list[Finished]]:
        kept: list[Outcome] = []
        finished: list[Finished] = []
        for outcome in outcomes:
            try:
                finished += self._store.finish([outcome], self._worker_id)
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
                finished += self._store.finish([outcome], self._worker_id)
            kept.append(outcome)
        return kept, finished


def _settled(outcomes: Sequence[Outcome], finished: Sequence[Finished]) -> Settled:
    by_id = {f.id: f for f in finished}
    return [(outcome, by_id.get(outcome.job.id)) for outcome in outcomes]
