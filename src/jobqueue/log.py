"""One JSON object per line on stdout: Cloud Logging and CloudWatch both parse it as fields.

Every line has ``severity`` (Cloud Logging's key) and ``level`` (CloudWatch's log-level
filter), ``time`` as RFC 3339 in UTC, ``message``, and the ids of the request being served
(``request_id`` on Lambda, with Powertools' ``service``, ``cold_start``,
``function_request_id`` and ``xray_trace_id``; ``logging.googleapis.com/trace`` on Cloud Run).
An error's traceback is in ``stack_trace``, where Cloud Error Reporting looks. The standard
``logging`` records of the libraries (httpx, psycopg, functions-framework) are written in the
same format. Callers pass only identifiers and measurements, never secrets or job input.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "jobqueue_log_context", default=MappingProxyType({})
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(severity: str, message: str, **fields: Any) -> dict[str, Any]:
    return {
        "severity": severity,
        "level": severity,
        "time": _now(),
        "message": message,
        **_context.get(),
        **fields,
    }


# One encoder for every line: json.dumps with options builds a new one per call, which cost
# as much as the encoding itself at a line per job.
_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode


def write(records: Iterable[dict[str, Any]]) -> None:
    """Writes the lines of many records at once: one write, not one per job."""
    if _QUIET.get():
        records = [r for r in records if r.get("severity") not in ("DEBUG", "INFO")]
    text = "".join(_encode(r) + "\n" for r in records)
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("jobqueue_log_quiet", default=False)


@contextmanager
def only_problems() -> Iterator[None]:
    """While it lasts, lines below WARNING are not written (a terminal showing progress)."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


def log_event(severity: str, message: str, **fields: Any) -> None:
    write([record(severity, message, **fields)])


def log_exception(message: str, **fields: Any) -> None:
    """An unexpected error with its traceback: in the log only, never in a response."""
    write([record("ERROR", message, stack_trace=traceback.format_exc(), **fields)])


@contextmanager
def request_context(ids: Mapping[str, Any]) -> Iterator[None]:
    """Every line written while a request is served quotes its ids."""
    token = _context.set(dict(ids))
    try:
        yield
    finally:
        _context.reset(token)


class JsonHandler(logging.Handler):
    """Library log records, written as our own lines."""

    def emit(self, entry: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": entry.name}
            if entry.exc_info:
                fields["stack_trace"] = "".join(traceback.format_exception(*entry.exc_info))
            write([record(_SEVERITY.get(entry.levelno, "DEFAULT"), entry.getMessage(), **fields)])
        except Exception:  # noqa: BLE001 - logging must never break the request
            self.handleError(entry)


_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


def capture_library_logs(level: int = logging.WARNING) -> None:
    """Routes the root logger to :class:`JsonHandler` (once per process)."""
    root = logging.getLogger()
    if not any(isinstance(handler, JsonHandler) for handler in root.handlers):
        root.addHandler(JsonHandler())
    root.setLevel(level)
