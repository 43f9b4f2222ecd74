"""The store over Supabase REST: the same SQL functions, called through PostgREST's ``/rpc``.

For deployments that cannot open a database connection. The supabase client is imported only
here, so the psycopg path never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from postgrest.exceptions import APIError
from supabase import Client, ClientOptions, create_client

from jobqueue.errors import ServiceUnavailable
from jobqueue.store.base import ClaimedJob, Finished, Outcome


class RestStore:
    def __init__(self, url: str, service_role_key: str, timeout: float = 30.0) -> None:
        # No automatic retries: a retried claim whose first try reached the database would
        # claim a second batch and leave the first leased to nobody until its lease expired.
        options = ClientOptions(postgrest_client_timeout=timeout, postgrest_client_retry=False)
        self._client: Client = create_client(url, service_role_key, options)

    def _rpc(self, function: str, params: dict[str, Any]) -> Any:
        try:
            return self._client.rpc(function, params).execute().data
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"Supabase REST is unreachable: {type(exc).__name__}"
            ) from None
        except APIError as exc:
            if str(exc.code or "").startswith(("5", "PGRST0")):
                raise ServiceUnavailable(f"Supabase REST failed: {exc.message}") from None
            raise

    def claim(
        self, worker: str, limit: int, lease_seconds: int, types: Sequence[str] | None
    ) -> list[ClaimedJob]:
        rows = self._rpc(
            "claim_jobs",
            {
                "p_worker": worker,
                "p_limit": limit,
                "p_lease_seconds": lease_seconds,
                "p_types": list(types) if types is not None else None,
            },
        )
        return [ClaimedJob.from_row(row) for row in rows or []]

    def finish(self, outcomes: Sequence[Outcome], worker: str) -> list[Finished]:
        rows = self._rpc(
            "finish_jobs",
            {"p_outcomes": [outcome.as_json() for outcome in outcomes], "p_worker": worker},
        )
        return [Finished.from_row(row) for row in rows or []]

    def extend_leases(self, jobs: Sequence[ClaimedJob], lease_seconds: int) -> set[int]:
        rows = self._rpc(
            "extend_job_leases",
            {
                "p_ids": [job.id for job in jobs],
                "p_attempts": [job.attempt for job in jobs],
                "p_lease_seconds": lease_seconds,
            },
        )
        return {int(value) for value in rows or []}

    def release(self, jobs: Sequence[ClaimedJob]) -> set[int]:
        rows = self._rpc(
            "release_jobs",
            {"p_ids": [job.id for job in jobs], "p_attempts": [job.attempt for job in jobs]},
        )
        return {int(value) for value in rows or []}

    def get_ingest_file(self, file_id: str) -> dict[str, Any] | None:
        rows = self._rpc("get_ingest_file", {"p_file_id": file_id})
        return rows[0] if rows else None

    def mark_ingest_file_processed(
        self,
        file_id: str,
        text: str,
        metadata: dict[str, Any],
        content_type: str | None,
        size_bytes: int | None,
    ) -> bool:
        return bool(
            self._rpc(
                "mark_ingest_file_processed",
                {
                    "p_file_id": file_id,
                    "p_text": text,
                    "p_metadata": metadata,
                    "p_content_type": content_type,
                    "p_size_bytes": size_bytes,
                },
            )
        )

    def close(self) -> None:
        self._client.postgrest.session.close()
