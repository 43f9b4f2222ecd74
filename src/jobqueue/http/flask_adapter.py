"""functions-framework (Flask) adapter: converts a Flask request and our response."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from jobqueue.http.core import HttpRequest, HttpResponse

if TYPE_CHECKING:
    import flask


def from_flask(request: flask.Request) -> HttpRequest:
    headers = {name.lower(): value for name, value in request.headers.items()}
    # The stream is read only when the pipeline asks, and never past its limit.
    return HttpRequest(request.method, headers, request.stream.read, _trace(headers))


def to_flask(response: HttpResponse) -> tuple[str, int, dict[str, str]] | flask.Response:
    """A (body, status, headers) tuple, which Flask turns into a response without an import.

    A request refused before its body was read is answered with a streamed response, and the
    connection's reading side is shut once it is sent: functions-framework reads the whole body
    before any other answer (its ``read_request`` hook), and gunicorn drains an unread body
    before the next request on a kept-alive connection, either of which would let a caller
    without the secret hold a serving thread by sending half a body.
    """
    headers = {"Content-Type": "application/json", **response.headers}
    if not response.closes:
        return response.json(), response.status, headers
    import flask

    connection = flask.request.environ.get("gunicorn.socket")

    def body() -> Iterator[str]:
        yield response.json()
        if isinstance(connection, socket.socket):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)

    headers["Connection"] = "close"
    return flask.Response(body(), response.status, headers)


def _trace(headers: dict[str, str]) -> dict[str, str]:
    """Cloud Run's ``X-Cloud-Trace-Context: TRACE/SPAN;o=1`` as Cloud Logging's trace field,
    so the log lines of one request group under it."""
    trace = headers.get("x-cloud-trace-context", "").split("/", 1)[0]
    if not trace or not trace.isalnum():
        return {}
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    return {
        "logging.googleapis.com/trace": f"projects/{project}/traces/{trace}" if project else trace
    }
