"""The store over Supabase REST: the same SQL functions, called through PostgREST's ``/rpc``.

For deployments that cannot open a database connection. supabase-py's own PostgREST client
(``postgrest``) is all it needs: the ``supabase`` meta-package would add the realtime, auth and
functions clients (websockets and more) to every cold start. It is imported only here, so the
psycopg path never pays for it.
"""

from __future__ import annotations

from typing import Any

import httpx
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError

from jobqueue.errors import ServiceUnavailable
from jobqueue.store.base import DatabaseError, Json, QueueStore, RejectedByDatabase
from jobqueue.supabase_keys import key_headers


class RestStore(QueueStore):
    def __init__(self, url: str, key: str, timeout: float = 30.0) -> None:
        # No automatic retries: a retried claim whose first try reached the database would
        # claim a second batch and leave the first leased to nobody until its lease expired.
        base_url = url.rstrip("/") + "/rest/v1"
        headers = {
            **key_headers(key),
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        session = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, follow_redirects=False
        )
        self._client = SyncPostgrestClient(
            base_url, headers=headers, http_client=session, retry_enabled=False
        )

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
            if code.startswith(("22", "54")):
                raise RejectedByDatabase(str(exc.message)) from None
            raise DatabaseError(code, str(exc.message)) from None
        except (UnicodeEncodeError, ValueError, TypeError) as exc:
            # The arguments could not even be encoded as JSON: nothing was sent.
            raise RejectedByDatabase(f"{type(exc).__name__}: {exc}") from None
        # PostgREST answers rows as objects, a set of scalars as a list, a scalar bare.
        if data is None:
            return []
        if isinstance(data, list):
            return [row if isinstance(row, dict) else {"value": row} for row in data]
        return [data] if isinstance(data, dict) else [{"value": data}]

    def discard_connection(self) -> None:
        """Nothing to do: httpx closes a connection whose request was interrupted."""

    def close(self) -> None:
        self._client.session.close()
