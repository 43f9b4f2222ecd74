"""The store over a direct PostgreSQL connection (psycopg 3).

One connection per serving thread of a warm instance, in autocommit so that each SQL function
call is its own transaction and commits once. ``prepare_threshold=None`` keeps it safe behind
Supabase's transaction-mode pooler (port 6543), which cannot hold server-side prepared
statements.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from jobqueue.errors import ServiceUnavailable
from jobqueue.queries import queries
from jobqueue.store.base import Json, QueueStore


class PostgresStore(QueueStore):
    def __init__(self, dsn: str, connect_timeout: int = 5) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def call(self, function: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        query = queries()[function]
        params = {k: Jsonb(v.value) if isinstance(v, Json) else v for k, v in args.items()}
        # A warm connection may have been closed under us (server restart, idle timeout):
        # replace it once. A fresh connection that fails means the database is out of reach.
        while True:
            warm = self._conn is not None and not self._conn.closed
            try:
                return self._connection().execute(query, params).fetchall()
            except psycopg.OperationalError as exc:
                self.close()
                if not warm:
                    raise ServiceUnavailable(
                        f"the queue database is unreachable: {_first_line(exc)}"
                    ) from None
            except psycopg.errors.UndefinedFunction:
                raise ServiceUnavailable(
                    f"the database has no {function}(): apply supabase/migrations to it"
                ) from None

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                prepare_threshold=None,
                row_factory=dict_row,
                connect_timeout=self._connect_timeout,
                application_name="jobqueue",
            )
        return self._conn

    def discard_connection(self) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _first_line(exc: Exception) -> str:
    # libpq's messages name the host and user, never the password.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
