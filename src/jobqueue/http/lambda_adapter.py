"""AWS Lambda adapter: API Gateway REST (v1), HTTP API (v2) and Function URL events."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from jobqueue.http.core import HttpRequest, HttpResponse


def is_http_event(event: Mapping[str, Any]) -> bool:
    """API Gateway and Function URL events carry requestContext or httpMethod; direct ones don't."""
    return "requestContext" in event or "httpMethod" in event


def from_event(event: Mapping[str, Any]) -> HttpRequest:
    method = event.get("httpMethod")
    if not method:
        method = (event.get("requestContext") or {}).get("http", {}).get("method", "")
    headers = {
        str(name).lower(): str(value)
        for name, value in (event.get("headers") or {}).items()
        if value is not None
    }
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode("utf-8")
    return HttpRequest(str(method), headers, body)


def to_proxy_response(response: HttpResponse) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": "application/json"},
        "body": response.json(),
    }
