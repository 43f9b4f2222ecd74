"""AWS Lambda adapter: API Gateway REST (v1), HTTP API (v2) and Function URL events.

The runtime hands over whatever JSON the invoker sent, so nothing about an event's shape is
assumed: anything that is not a well-formed HTTP event is answered 400, never raised.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from jobqueue.http.core import BadRequest, Endpoint, HttpRequest, HttpResponse, error


def is_http_event(event: Any) -> bool:
    """API Gateway and Function URL events carry requestContext or httpMethod; direct ones don't."""
    return isinstance(event, dict) and ("requestContext" in event or "httpMethod" in event)


def handle_event(endpoint: Endpoint[Any, Any], event: Any, context: Any) -> dict[str, Any]:
    """The proxy response to one HTTP event."""
    ids = request_ids(context)
    try:
        request = from_event(event, ids)
    except BadRequest as exc:
        return to_proxy_response(error(400, "bad_request", str(exc)))
    return to_proxy_response(endpoint.handle(request))


_cold = True


def request_ids(context: Any) -> dict[str, Any]:
    """What every log line of this invocation quotes, under AWS Lambda Powertools' names (so
    its dashboards and queries work on our lines) and our own ``request_id``."""
    global _cold
    cold, _cold = _cold, False
    ids: dict[str, Any] = {"cold_start": cold}
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or getattr(context, "function_name", None)
    if isinstance(service, str):
        ids["service"] = service
    request_id = getattr(context, "aws_request_id", None)
    if isinstance(request_id, str):
        ids["request_id"] = ids["function_request_id"] = request_id
    trace = os.environ.get("_X_AMZN_TRACE_ID", "")
    root = next((p[5:] for p in trace.split(";") if p.startswith("Root=")), None)
    if root:
        ids["xray_trace_id"] = root
    return ids


def from_event(event: Any, ids: dict[str, str] | None = None) -> HttpRequest:
    if not isinstance(event, dict):
        raise BadRequest("the event must be a JSON object")
    method = event.get("httpMethod")
    if method is None:
        request_context = event.get("requestContext")
        http = request_context.get("http") if isinstance(request_context, dict) else None
        method = http.get("method") if isinstance(http, dict) else None
    if not isinstance(method, str):
        raise BadRequest(
            "the event names no HTTP method (httpMethod or requestContext.http.method)"
        )
    raw_headers = event.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise BadRequest("the event's headers must be an object")
    headers = {
        str(name).lower(): str(value)
        for name, value in raw_headers.items()
        if isinstance(value, str | int | float)
    }
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        raise BadRequest("the event's body must be a string")
    if event.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the event's body is not valid base64") from None
    else:
        body = raw.encode("utf-8", "surrogatepass")
    return HttpRequest.of(method, headers, body, ids)


def to_proxy_response(response: HttpResponse) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": "application/json", **response.headers},
        "body": response.json(),
    }
