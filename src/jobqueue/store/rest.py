"""The store over Supabase REST: the same SQL functions, called through PostgREST's ``/rpc``.

For deployments that cannot open a database connection. The supabase client is imported only
here, so the psycopg path never pays for it.
"""

from __future__ import annotations

from typing import Any

import httpx
from postgrest.exceptions import APIError
from supabase import Client, ClientOptions, create_client

from jobqueue.errors import ServiceUnavailable
from jobqueue.store.base import Json, QueueStore


class RestStore(QueueStore):
    def __init__(self, url: str, service_role_key: str, timeout: float = 30.0) -> None:
        # No automatic retries: a retried claim whose first try reached the database would
        # claim a second batch and leave the first leased to nobody until its lease expired.
        options = ClientOptions(postgrest_client_timeout=timeout, postgrest_client_retry=False)
        self._client: Client = create_client(url, service_role_key, options)

    def call(self, function: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        params = {k: v.value if isinstance(v, Json) else v for k, v in args.items()}
        try:
            data = self._client.rpc(function, params).execute().data
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"Supabase REST is unreachable: {type(exc).__name__}"
            ) from None
        except APIError as exc:
            code = str(exc.code or "")
            if code == "PGRST202":
                raise ServiceUnavailable(
                    f"the database has no {function}(): apply supabase/migrations to it"
                ) from None
            # PGRST0xx: PostgREST cannot reach the database; SQLSTATE class 5x: the database
            # is out of resources or shutting down.
            if code.startswith(("5", "PGRST0")):
                raise ServiceUnavailable(f"Supabase REST failed: {exc.message}") from None
            raise
        # PostgREST answers rows as objects, a set of scalars as a list, a scalar bare.
        if data is None:
            return []
        if isinstance(data, list):
            return [row if isinstance(row, dict) else {"value": row} for row in data]
        return [data] if isinstance(data, dict) else [{"value": data}]

    def discard_connection(self) -> None:
        """Nothing to do: httpx closes a connection whose request was interrupted."""

    def close(self) -> None:
        self._client.postgrest.session.close()
