"""The request pipeline both functions share, independent of the runtime that serves them.

Every POST is checked in the order the contract fixes (configuration, secret, size, body) before
the function's own service runs, so each runtime adapter only converts requests and responses.
The body is read only after the secret matched: a caller without it cannot hold a serving
thread by sending half a body.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from jobqueue import log, timing
from jobqueue.errors import NotConfigured, ServiceUnavailable
from jobqueue.jsonsafe import jsonb_problem

MAX_BODY_BYTES = 1024 * 1024

S = TypeVar("S")
M = TypeVar("M")


@dataclass(frozen=True)
class HttpRequest:
    """A request as every runtime can describe it; header names are lower-case.

    ``read_body(limit)`` returns at most ``limit`` bytes of the body, or raises
    :class:`BadRequest` when its framing is broken; it is called once, and only for a caller
    that gave the right secret. ``context`` carries the ids a log line
    should quote (Lambda's request id, Cloud Run's trace).
    """

    method: str
    headers: Mapping[str, str]
    read_body: Callable[[int], bytes]
    context: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        method: str,
        headers: Mapping[str, str],
        body: bytes,
        context: Mapping[str, Any] | None = None,
    ) -> HttpRequest:
        return cls(method, headers, lambda limit: body[:limit], context or {})

    def content_length(self) -> int | None:
        try:
            return int(self.headers.get("content-length", ""))
        except ValueError:
            return None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    # Refused before its body was read: the connection must close, or the server would wait
    # for the rest of that body before serving the next request on it.
    closes: bool = False
    # The body already encoded (timed as the "respond" stage before the header was written).
    encoded: str | None = None

    def json(self) -> str:
        if self.encoded is not None:
            return self.encoded
        return json.dumps(self.body, separators=(",", ":"))


def error(status: int, code: str, message: str) -> HttpResponse:
    return HttpResponse(status, {"error": code, "message": message})


_TOO_LARGE = error(413, "payload_too_large", "body is larger than 1 MiB")


class BadRequest(Exception):
    """The body is not acceptable; the message is safe to show the caller."""


def secret_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing reveals nothing about the secret."""
    if given is None:
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def parse_json_object(body: bytes) -> dict[str, Any]:
    """An empty body means {}; anything but a JSON object PostgreSQL could store is refused."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except RecursionError:
        raise BadRequest("body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    return checked_object(value, "body")


def checked_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object the database can take (no NaN, NUL, lone surrogate or
    deep nesting), else ``BadRequest`` naming the problem."""
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    problem = jsonb_problem(value)
    if problem:
        raise BadRequest(f"{what} {problem}")
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
    # More of the health check's answer, from configured settings (worker_pull: handlers).
    describe: Callable[[S], dict[str, Any]] | None = None

    def health(self) -> dict[str, Any]:
        try:
            settings = self.load_settings()
        except NotConfigured:
            return {"status": "ok", "function": self.name, "configured": False}
        answer = {"status": "ok", "function": self.name, "configured": True}
        if self.describe is not None:
            try:
                answer |= self.describe(settings)
            except Exception:  # noqa: BLE001 - a health check answers whatever happens
                log.log_exception(f"{self.name}'s health check could not describe itself")
        return answer

    def handle(self, request: HttpRequest) -> HttpResponse:
        with log.request_context(request.context), timing.measured():
            response = self._handle(request)
            if response.status >= 400:
                log.log_event(
                    "ERROR" if response.status >= 500 else "WARNING",
                    f"{self.name} answered {response.status}",
                    status=response.status,
                    error=response.body.get("error"),
                    reason=response.body.get("message"),
                )
            return response

    def _handle(self, request: HttpRequest) -> HttpResponse:
        if request.method.upper() == "GET":
            return HttpResponse(200, self.health())
        with timing.stage("parse"):
            settings = self._admit(request)
            if isinstance(settings, HttpResponse):
                return replace(settings, closes=True)
            try:
                body = request.read_body(MAX_BODY_BYTES + 1)
            except BadRequest as exc:  # the framing broke: nothing after it can be trusted
                return replace(error(400, "bad_request", str(exc)), closes=True)
            if len(body) > MAX_BODY_BYTES:
                return replace(_TOO_LARGE, closes=True)
            try:
                model = self.parse(parse_json_object(body))
            except BadRequest as exc:
                return error(400, "bad_request", str(exc))
        response = self.run(settings, model)
        with timing.stage("respond"):
            encoded = response.json()
        # Only an authorised caller learns where the time went.
        headers = {**response.headers, "Server-Timing": timing.server_timing()}
        return replace(response, headers=headers, encoded=encoded)

    def _admit(self, request: HttpRequest) -> S | HttpResponse:
        """Everything decided before the body is read: method, configuration, secret, the
        declared size. Returns the settings, or the refusal."""
        method = request.method.upper()
        if method != "POST":
            refused = error(
                405,
                "method_not_allowed",
                f"{method or 'no method'} is not allowed; use GET or POST",
            )
            return replace(refused, headers={"Allow": "GET, POST"})
        try:
            settings = self.load_settings()
        except NotConfigured as exc:
            return error(503, "not_configured", str(exc))
        if not secret_matches(request.headers.get(self.secret_header), self.secret_of(settings)):
            return error(401, "unauthorized", f"missing or wrong {self.secret_header} header")
        if (request.content_length() or 0) > MAX_BODY_BYTES:
            return _TOO_LARGE
        return settings

    def run(self, settings: S, model: M) -> HttpResponse:
        """Serves an already authorised and validated request."""
        try:
            return HttpResponse(200, self.serve(settings, model))
        except NotConfigured as exc:
            return error(503, "not_configured", str(exc))
        except ServiceUnavailable as exc:
            return error(503, "unavailable", str(exc))
        except Exception:  # noqa: BLE001 - the caller gets JSON, the log gets the traceback
            log.log_exception(f"{self.name} failed with an unexpected error")
            return error(500, "internal", f"{self.name} failed; its log says why")
