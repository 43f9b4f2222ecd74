"""The connection's framing, kept honest under functions-framework's gunicorn.

Two things in the stack read request bodies that we never asked for: functions-framework's
``read_request`` hook reads the whole body of any non-streamed answer (a GET with 512 MiB
attached), and gunicorn drains an unread body to keep the connection alive, then parses what
follows as the next request (a refused body becomes requests of its own). gunicorn also drops
an application's ``Connection: close``, since it is a hop-by-hop header.

So every request's ``wsgi.input`` is wrapped in :class:`BoundedBody`: nothing can read more than
the limit from it, a body cut short of its ``Content-Length`` or with broken chunked framing is
recorded instead of raised, and a connection whose body was not read to its end (or whose answer
asked to close) is closed by gunicorn itself (``force_close`` on its response object, which is
what it passes as ``start_response``), so nothing after that body is ever parsed. Once the
answer is written the socket's reading side is shut, so gunicorn's graceful close (FIN, a drain,
close), which runs on its main thread, never waits for a peer that keeps sending.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

CLOSE_KEY = "jobqueue.close_connection"
BODY_KEY = "jobqueue.body"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class BoundedBody:
    """A request body that yields at most ``limit`` bytes and never raises.

    ``problem`` names a framing fault (cut short, malformed chunks); ``complete`` is true once
    the body is known to have been read to its end.
    """

    def __init__(self, stream: Any, declared: int | None, chunked: bool, limit: int) -> None:
        self._stream = stream
        self._declared = declared
        self._limit = limit
        self.read_bytes = 0
        self.problem: str | None = None
        # A request with neither Content-Length nor chunked encoding has no body.
        self._ended = not chunked and not declared

    @property
    def complete(self) -> bool:
        return self._ended and self.problem is None

    def read(self, size: int | None = -1) -> bytes:
        return self._take(size, lambda n: self._stream.read(n))

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(size, lambda n: self._stream.readline(n))

    def _take(self, size: int | None, read: Callable[[int], bytes]) -> bytes:
        allowance = self._limit - self.read_bytes
        if self._ended or self.problem is not None or allowance <= 0:
            return b""
        wanted = allowance if size is None or size < 0 else min(size, allowance)
        if wanted == 0:
            return b""
        try:
            data = bytes(read(wanted))
        except Exception as exc:  # noqa: BLE001 - gunicorn's parse errors, resets: all framing
            self.problem = _framing_problem(exc)
            return b""
        self.read_bytes += len(data)
        if self._declared is not None and self.read_bytes >= self._declared:
            self._ended = True
        elif len(data) < wanted:
            # gunicorn's body returns short only at its end (a peer's half-close or EOF).
            self._ended = True
            if self._declared is not None:
                self.problem = (
                    f"the body ended after {self.read_bytes} of the {self._declared} bytes "
                    "its Content-Length declared"
                )
        return data

    def __iter__(self) -> BoundedBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def _framing_problem(exc: Exception) -> str:
    name = type(exc).__name__
    if "Chunk" in name:
        return "the body's chunked encoding is malformed"
    return f"the body could not be read ({name})"


def _declared_length(environ: dict[str, Any]) -> int | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


class ConnectionGuard:
    """WSGI middleware around the Flask app functions-framework builds (see the module doc)."""

    def __init__(self, app: WsgiApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        body = BoundedBody(
            environ.get("wsgi.input"), _declared_length(environ), chunked, self.limit
        )
        environ["wsgi.input"] = body
        environ[BODY_KEY] = body

        forced = False

        def guarded(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal forced
            if environ.get(CLOSE_KEY) or not body.complete:
                # gunicorn passes its Response's bound start_response; other servers (the
                # Flask test client) have no connection to keep.
                server_response = getattr(start_response, "__self__", None)
                force_close = getattr(server_response, "force_close", None)
                if callable(force_close):
                    force_close()
                    forced = True
            return start_response(status, headers, exc_info)

        answer = self.app(environ, guarded)

        def then() -> None:
            if forced:
                _stop_reading(environ.get("gunicorn.socket"))

        return _Closing(answer, then)


class _Closing:
    """The app's answer, plus one step once gunicorn has written all of it (WSGI's close())."""

    def __init__(self, answer: Iterable[bytes], then: Callable[[], None]) -> None:
        self._answer = answer
        self._then = then

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._answer)

    def close(self) -> None:
        try:
            close = getattr(self._answer, "close", None)
            if callable(close):
                close()
        finally:
            self._then()


def _stop_reading(sock: object) -> None:
    """After the answer is out: gunicorn's graceful close then drains only what already
    arrived and never waits on its main thread for a peer that keeps sending."""
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)


def install(limit: int) -> None:
    """Wraps the Flask app functions-framework is loading ``main.py`` into (it runs the module
    inside that app's context). Outside such a context (a plain import, Lambda) it does nothing."""
    import flask

    try:
        app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        return
    if not isinstance(app.wsgi_app, ConnectionGuard):
        app.wsgi_app = ConnectionGuard(app.wsgi_app, limit)
