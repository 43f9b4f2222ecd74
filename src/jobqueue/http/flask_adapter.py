"""functions-framework (Flask) adapter: converts a Flask request and our response."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jobqueue.http.core import BadRequest, HttpRequest, HttpResponse
from jobqueue.http.wsgi_guard import BODY_KEY, CLOSE_KEY, BoundedBody

if TYPE_CHECKING:
    import flask


def from_flask(request: flask.Request) -> HttpRequest:
    headers = {name.lower(): value for name, value in request.headers.items()}
    body = request.environ.get(BODY_KEY)

    def read_body(limit: int) -> bytes:
        # Read only when the pipeline asks, and never past its limit; a body cut short or
        # badly chunked is the caller's fault (400), not ours (500).
        data: bytes = request.stream.read(limit)
        if isinstance(body, BoundedBody) and body.problem is not None:
            raise BadRequest(body.problem)
        return data

    return HttpRequest(request.method, headers, read_body, _trace(headers))


def to_flask(response: HttpResponse) -> flask.Response:
    """Always a streamed response (with its Content-Length), so functions-framework's
    ``read_request`` hook never reads a body the pipeline did not ask for; a refusal marks its
    connection to be closed (see ``wsgi_guard``)."""
    import flask

    payload = response.json().encode()
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(payload)),
        **response.headers,
    }
    if response.closes:
        flask.request.environ[CLOSE_KEY] = True
    return flask.Response(iter([payload]), response.status, headers)


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
