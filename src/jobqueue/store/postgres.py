"""The store over a direct PostgreSQL connection (psycopg 3).

One connection per warm instance, in autocommit so that each SQL function call is its own
transaction and commits once. ``prepare_threshold=None`` keeps it safe behind Supabase's
transaction-mode pooler (port 6543), which cannot hold server-side prepared statements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from jobqueue.errors import ServiceUnavailable
from jobqueue.queries import queries
from jobqueue.store.base import ClaimedJob, Finished, Outcome

T = TypeVar("T")


class PostgresStore:
    def __init__(self, dsn: str, connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                prepare_threshold=None,
                row_factory=dict_row,
                connect_timeout=max(1, int(self._connect_timeout)),
                application_name="jobqueue",
            )
        return self._conn

    def _run(self, use: Callable[[psycopg.Connection[dict[str, Any]]], T]) -> T:
        """Runs one call; a broken warm connection is replaced once before giving up."""
        while True:
            warm = self._conn is not None and not self._conn.closed
            try:
                return use(self._connection())
            except psycopg.OperationalError as exc:
                self.close()
                if not warm:
                    raise ServiceUnavailable(
                        f"the queue database is unreachable: {_reason(exc)}"
                    ) from None

    def _fetch(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self._run(lambda conn: conn.execute(queries()[name], params).fetchall())

    def claim(
        self, worker: str, limit: int, lease_seconds: int, types: Sequence[str] | None
    ) -> list[ClaimedJob]:
        rows = self._fetch(
            "claim_jobs",
            {
                "worker": worker,
                "limit": limit,
                "lease_seconds": lease_seconds,
                "types": list(types) if types is not None else None,
            },
        )
        return [ClaimedJob.from_row(row) for row in rows]

    def finish(self, outcomes: Sequence[Outcome], worker: str) -> list[Finished]:
        payload = Jsonb([outcome.as_json() for outcome in outcomes])
        rows = self._fetch("finish_jobs", {"outcomes": payload, "worker": worker})
        return [Finished.from_row(row) for row in rows]

    def extend_leases(self, jobs: Sequence[ClaimedJob], lease_seconds: int) -> set[int]:
        rows = self._fetch(
            "extend_job_leases",
            {
                "ids": [job.id for job in jobs],
                "attempts": [job.attempt for job in jobs],
                "lease_seconds": lease_seconds,
            },
        )
        return {int(row["id"]) for row in rows}

    def release(self, jobs: Sequence[ClaimedJob]) -> set[int]:
        rows = self._fetch(
            "release_jobs",
            {"ids": [job.id for job in jobs], "attempts": [job.attempt for job in jobs]},
        )
        return {int(row["id"]) for row in rows}

    def get_ingest_file(self, file_id: str) -> dict[str, Any] | None:
        rows = self._fetch("get_ingest_file", {"file_id": file_id})
        return rows[0] if rows else None

    def mark_ingest_file_processed(
        self,
        file_id: str,
        text: str,
        metadata: dict[str, Any],
        content_type: str | None,
        size_bytes: int | None,
    ) -> bool:
        rows = self._fetch(
            "mark_ingest_file_processed",
            {
                "file_id": file_id,
                "text": text,
                "metadata": Jsonb(metadata),
                "content_type": content_type,
                "size_bytes": size_bytes,
            },
        )
        return bool(rows and rows[0]["updated"])

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _reason(exc: Exception) -> str:
    # libpq messages can quote the connection string's host and user but never the password.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
