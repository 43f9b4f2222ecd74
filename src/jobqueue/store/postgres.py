"""The store over a direct PostgreSQL connection (psycopg 3).

One connection per serving thread of a warm instance, in autocommit so that each SQL function
call is its own transaction and commits once. ``prepare_threshold=None`` keeps it safe behind
Supabase's transaction-mode pooler (port 6543), which cannot hold server-side prepared
statements.

Every call is bounded in time whatever the database does: a connect timeout, TCP keepalives
for a peer that vanished, and a client-side deadline for one that still holds the connection
open but stopped answering (a frozen server keeps acknowledging TCP, so only the client can
tell). At the deadline the socket is shut down, the call fails and the connection is dropped.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from jobqueue.errors import NotConfigured, ServiceUnavailable
from jobqueue.queries import queries
from jobqueue.store.base import DatabaseError, Json, QueueStore, RejectedByDatabase

CONNECT_TIMEOUT_SECONDS = 5
CALL_TIMEOUT_SECONDS = 30.0


class PostgresStore(QueueStore):
    def __init__(self, dsn: str, call_timeout: float = CALL_TIMEOUT_SECONDS) -> None:
        self._dsn = dsn
        self._call_timeout = call_timeout
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def call(self, function: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        query = queries().get(function) or _generic_call(function, args)
        params = {k: Jsonb(v.value) if isinstance(v, Json) else v for k, v in args.items()}
        # A warm connection may have been closed under us (server restart, idle timeout):
        # replace it once. A fresh connection that fails means the database is out of reach.
        while True:
            warm = self._conn is not None and not self._conn.closed
            conn = self._connection()
            try:
                with _guard.watch(conn, self._call_timeout):
                    return conn.execute(query, params).fetchall()
            except _CallTimedOut:
                self.close()
                raise ServiceUnavailable(
                    f"the queue database did not answer {function}() within "
                    f"{self._call_timeout:g} s"
                ) from None
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
            except (psycopg.errors.DataError, psycopg.errors.ProgramLimitExceeded) as exc:
                raise RejectedByDatabase(_first_line(exc)) from None
            except psycopg.Error as exc:
                raise DatabaseError(exc.sqlstate or "", _primary(exc)) from None
            except (UnicodeEncodeError, ValueError, TypeError) as exc:
                # Raised while the arguments were converted, before anything was sent.
                raise RejectedByDatabase(f"{type(exc).__name__}: {exc}") from None

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self._dsn,
                    autocommit=True,
                    prepare_threshold=None,
                    row_factory=dict_row,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    application_name="jobqueue",
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
            except psycopg.Error as exc:
                problem = _invalid_option(exc)
                if problem:
                    raise NotConfigured(f"DATABASE_URL is invalid ({problem})") from None
                raise ServiceUnavailable(
                    f"the queue database is unreachable: {_first_line(exc)}"
                ) from None
        return self._conn

    def discard_connection(self) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class _CallTimedOut(Exception):
    pass


class _DeadlineGuard:
    """One thread for the process that shuts down the socket of any call past its deadline.

    Registering a call is a dict assignment, so the fast path (a claim every few ms) pays
    nothing like a timer thread per call.
    """

    POLL_SECONDS = 0.1

    def __init__(self) -> None:
        self._watched: dict[int, tuple[float, psycopg.Connection[Any], list[bool]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, conn: psycopg.Connection[Any], seconds: float) -> _Watch:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="db-deadline", daemon=True
                    )
                    self._thread.start()
        return _Watch(self, conn, time.monotonic() + seconds)

    def _loop(self) -> None:
        while True:
            time.sleep(self.POLL_SECONDS)
            now = time.monotonic()
            with self._lock:
                expired = [w for w in self._watched.values() if w[0] <= now and not w[2][0]]
                for _, conn, fired in expired:
                    fired[0] = True
                    _shut_down(conn)


class _Watch:
    def __init__(self, guard: _DeadlineGuard, conn: psycopg.Connection[Any], at: float) -> None:
        self._guard = guard
        self._entry = (at, conn, [False])

    def __enter__(self) -> None:
        with self._guard._lock:
            self._guard._watched[id(self)] = self._entry

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        with self._guard._lock:
            self._guard._watched.pop(id(self), None)
        if self._entry[2][0]:
            raise _CallTimedOut from None


def _shut_down(conn: psycopg.Connection[Any]) -> None:
    try:
        sock = socket.socket(fileno=conn.pgconn.socket)
    except (OSError, psycopg.Error):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()  # the descriptor stays libpq's to close


_guard = _DeadlineGuard()

# libpq's complaints about the connection string itself, as opposed to the network.
_INVALID = re.compile(r"(invalid [a-z_ -]+?)(?:[:\"]|$)", re.IGNORECASE)


def _invalid_option(exc: psycopg.Error) -> str | None:
    """What is wrong with the connection string, without quoting it (it may hold the
    password)."""
    text = _first_line(exc).removeprefix("connection is bad: ")
    if isinstance(exc, psycopg.ProgrammingError) or text.startswith("invalid "):
        match = _INVALID.search(text)
        return match.group(1).strip() if match else "not a valid connection string"
    return None


def _generic_call(function: str, args: dict[str, Any]) -> sql.Composed:
    """``select * from public.<function>(name => value, ...) as value``: a handler's own SQL
    function, called as PostgREST calls it (named arguments); a scalar result comes back as
    the column ``value``, a table's columns under their own names."""
    arguments = sql.SQL(", ").join(
        sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in args
    )
    return sql.SQL("select * from public.{}({}) as value").format(
        sql.Identifier(function), arguments
    )


def _primary(exc: psycopg.Error) -> str:
    """The server's own sentence, as PostgREST relays it in ``message``."""
    return exc.diag.message_primary or _first_line(exc)


def _first_line(exc: Exception) -> str:
    # libpq's messages name the host and user, never the password.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
