"""What every store offers: one method per SQL function, returning plain frozen records.

The methods are written once, here, in terms of :meth:`QueueStore.call`; the two stores
(psycopg for ``DATABASE_URL``, PostgREST for Supabase REST) only carry a call to the database
and back. Neither holds queue logic, which lives in the SQL functions alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class RejectedByDatabase(Exception):
    """The database refused the statement's data (SQLSTATE class 22: a value jsonb or text
    cannot hold, a number out of range); sending it again would fail the same way."""


class DatabaseError(Exception):
    """The database refused the call for any other reason: an error a SQL function raises on
    purpose (a limit below 1, more tokens than a minute allows), a permission, a constraint.
    Both stores raise it for the same fault with the same SQLSTATE and message (PostgREST
    relays both), so a handler's ``ctx.call`` or a tool catches one type on either store."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    type: str
    input: Any
    attempt: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClaimedJob:
        return cls(
            id=int(row["id"]),
            type=str(row["type"]),
            input=row["input"],
            attempt=int(row["attempts"]),
        )


@dataclass(frozen=True)
class Outcome:
    """One attempt's result, as ``finish_jobs`` takes it."""

    job: ClaimedJob
    ok: bool
    output: Any = None
    error: str | None = None
    permanent: bool = False
    retry_in_ms: int | None = None
    # A snooze: back to the queue for this long, not a failed attempt.
    snooze_ms: int | None = None
    duration_ms: float = field(default=0.0, compare=False)

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.job.id, "attempt": self.job.attempt, "ok": self.ok}
        if self.ok:
            item["output"] = self.output
        else:
            item["error"] = self.error
            item["permanent"] = self.permanent
            if self.retry_in_ms is not None:
                item["retry_in_ms"] = self.retry_in_ms
            if self.snooze_ms is not None:
                item["snooze_ms"] = self.snooze_ms
        return item


@dataclass(frozen=True)
class Finished:
    """A job's state after ``finish_jobs``; ``accepted`` is false when fencing refused it."""

    id: int
    status: str
    error: str | None
    accepted: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Finished:
        return cls(
            id=int(row["id"]),
            status=str(row["status"]),
            error=row["error"],
            accepted=bool(row["accepted"]),
        )


@dataclass(frozen=True)
class Json:
    """Marks an argument the SQL function takes as ``jsonb`` (a list would otherwise be an
    array)."""

    value: Any


class QueueStore(ABC):
    @abstractmethod
    def call(self, function: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Calls ``public.<function>`` with named arguments (the queue's own, and the SQL
        functions a handler's migration defines); returns its rows, a scalar result as
        ``[{"value": ...}]``. Raises ``ServiceUnavailable`` when the database is out of
        reach, ``RejectedByDatabase`` when it refuses the arguments' values, and
        ``DatabaseError`` for any other error the database answers."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def discard_connection(self) -> None:
        """Drops a connection a call may have left half-used (a handler interrupted inside
        it); the next call opens a new one."""

    def claim(
        self, worker: str, limit: int, lease_seconds: int, types: Sequence[str] | None
    ) -> list[ClaimedJob]:
        rows = self.call("claim_jobs", _claim_args(worker, limit, lease_seconds, types))
        return [ClaimedJob.from_row(row) for row in rows]

    def finish(self, outcomes: Sequence[Outcome], worker: str) -> list[Finished]:
        rows = self.call("finish_jobs", _outcomes_arg(outcomes) | {"p_worker": worker})
        return [Finished.from_row(row) for row in rows]

    def finish_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker: str,
        limit: int,
        lease_seconds: int,
        types: Sequence[str] | None,
    ) -> tuple[list[Finished], list[ClaimedJob]]:
        """``finish`` then ``claim`` in one round trip and one commit."""
        rows = self.call(
            "finish_and_claim_jobs",
            _outcomes_arg(outcomes) | _claim_args(worker, limit, lease_seconds, types),
        )
        finished = [Finished.from_row(r) for r in rows if r["kind"] == "finished"]
        claimed = [ClaimedJob.from_row(r) for r in rows if r["kind"] == "claimed"]
        return finished, claimed

    def extend_leases(self, jobs: Sequence[ClaimedJob], lease_seconds: int) -> set[int]:
        """The ids among ``jobs`` this worker still holds, now leased anew."""
        args = _held(jobs) | {"p_lease_seconds": lease_seconds}
        return {int(row["value"]) for row in self.call("extend_job_leases", args)}

    def release(self, jobs: Sequence[ClaimedJob]) -> set[int]:
        return {int(row["value"]) for row in self.call("release_jobs", _held(jobs))}


def _claim_args(
    worker: str, limit: int, lease_seconds: int, types: Sequence[str] | None
) -> dict[str, Any]:
    return {
        "p_worker": worker,
        "p_limit": limit,
        "p_lease_seconds": lease_seconds,
        "p_types": list(types) if types is not None else None,
    }


def _outcomes_arg(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    return {"p_outcomes": Json([outcome.as_json() for outcome in outcomes])}


def _held(jobs: Sequence[ClaimedJob]) -> dict[str, Any]:
    return {"p_ids": [job.id for job in jobs], "p_attempts": [job.attempt for job in jobs]}
