"""The request pipeline both functions share, independent of the runtime that serves them.

Every POST is checked in the order CONTRACT.md fixes (configuration, secret, size, body) before
the function's own service runs, so each runtime adapter only converts requests and responses.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from jobqueue.errors import NotConfigured, ServiceUnavailable
from jobqueue.log import log_event

MAX_BODY_BYTES = 1024 * 1024

S = TypeVar("S")
M = TypeVar("M")


@dataclass(frozen=True)
class HttpRequest:
    """A request as every runtime can describe it; header names are lower-case."""

    method: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: dict[str, Any]

    def json(self) -> str:
        return json.dumps(self.body, separators=(",", ":"))


def error(status: int, code: str, message: str) -> HttpResponse:
    return HttpResponse(status, {"error": code, "message": message})


class BadRequest(Exception):
    """The body is not acceptable; the message is safe to show the caller."""


def secret_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing reveals nothing about the secret."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def parse_json_object(body: bytes) -> dict[str, Any]:
    """An empty body means {}; anything but a JSON object is refused."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object")
    return value


@dataclass
class Endpoint(Generic[S, M]):
    """One function's POST: how to configure it, authorise it, validate and serve its body.

    ``load_settings`` raises :class:`NotConfigured` naming the variable at fault; ``parse``
    raises :class:`BadRequest`; ``serve`` may raise :class:`ServiceUnavailable`.
    """

    name: str
    secret_header: str
    load_settings: Callable[[], S]
    secret_of: Callable[[S], str]
    parse: Callable[[dict[str, Any]], M]
    serve: Callable[[S, M], dict[str, Any]]

    def health(self) -> dict[str, Any]:
        try:
            self.load_settings()
            configured = True
        except NotConfigured:
            configured = False
        return {"status": "ok", "function": self.name, "configured": configured}

    def handle(self, request: HttpRequest) -> HttpResponse:
        method = request.method.upper()
        if method == "GET":
            return HttpResponse(200, self.health())
        if method != "POST":
            return error(405, "method_not_allowed", f"{method} is not allowed; use GET or POST")
        try:
            settings = self.load_settings()
        except NotConfigured as exc:
            return error(503, "not_configured", str(exc))
        if not secret_matches(request.headers.get(self.secret_header), self.secret_of(settings)):
            return error(401, "unauthorized", f"missing or wrong {self.secret_header} header")
        if len(request.body) > MAX_BODY_BYTES:
            return error(413, "payload_too_large", "body is larger than 1 MiB")
        try:
            model = self.parse(parse_json_object(request.body))
        except BadRequest as exc:
            return error(400, "bad_request", str(exc))
        return self.run(settings, model)

    def run(self, settings: S, model: M) -> HttpResponse:
        """Serves an already authorised and validated request."""
        try:
            return HttpResponse(200, self.serve(settings, model))
        except ServiceUnavailable as exc:
            return error(503, "unavailable", str(exc))
        except Exception as exc:  # noqa: BLE001 - the caller gets JSON, the log gets the cause
            log_event("ERROR", f"{self.name} failed", error=f"{type(exc).__name__}: {exc}")
            return error(500, "internal", f"{self.name} failed; its log says why")
