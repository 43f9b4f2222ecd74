"""What every store offers: one method per SQL function, returning plain frozen records.

Two stores implement it (psycopg for ``DATABASE_URL``, PostgREST for Supabase REST); neither holds
queue logic, which lives in the SQL functions alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    type: str
    input: Any
    attempt: int
    max_attempts: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClaimedJob:
        return cls(
            id=int(row["id"]),
            type=str(row["type"]),
            input=row["input"],
            attempt=int(row["attempts"]),
            max_attempts=int(row["max_attempts"]),
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
        return item


@dataclass(frozen=True)
class Finished:
    """A job's state after ``finish_jobs``; ``accepted`` is false when fencing refused it."""

    id: int
    status: str
    attempts: int
    error: str | None
    accepted: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Finished:
        return cls(
            id=int(row["id"]),
            status=str(row["status"]),
            attempts=int(row["attempts"] or 0),
            error=row["error"],
            accepted=bool(row["accepted"]),
        )


class QueueStore(Protocol):
    def claim(
        self, worker: str, limit: int, lease_seconds: int, types: Sequence[str] | None
    ) -> list[ClaimedJob]: ...

    def finish(self, outcomes: Sequence[Outcome], worker: str) -> list[Finished]: ...

    def extend_leases(self, jobs: Sequence[ClaimedJob], lease_seconds: int) -> set[int]: ...

    def release(self, jobs: Sequence[ClaimedJob]) -> set[int]: ...

    def get_ingest_file(self, file_id: str) -> dict[str, Any] | None: ...

    def mark_ingest_file_processed(
        self,
        file_id: str,
        text: str,
        metadata: dict[str, Any],
        content_type: str | None,
        size_bytes: int | None,
    ) -> bool: ...

    def close(self) -> None: ...
