"""functions-framework (Flask) adapter: converts a Flask request and our response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobqueue.http.core import MAX_BODY_BYTES, HttpRequest, HttpResponse

if TYPE_CHECKING:
    import flask


def from_flask(request: flask.Request) -> HttpRequest:
    # Read one byte past the limit: enough to refuse an oversized body without buffering it all.
    body = request.stream.read(MAX_BODY_BYTES + 1)
    headers = {name.lower(): value for name, value in request.headers.items()}
    return HttpRequest(request.method, headers, body)


def to_flask(response: HttpResponse) -> tuple[str, int, dict[str, str]]:
    """A (body, status, headers) tuple, which Flask turns into a response without an import."""
    return response.json(), response.status, {"Content-Type": "application/json"}
