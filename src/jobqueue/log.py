"""One JSON object per line on stdout: Cloud Logging and CloudWatch both parse it as fields.

``severity`` and ``message`` are the keys Cloud Logging maps to its own; callers pass only
identifiers and measurements, never secrets or job input.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from typing import Any


def record(severity: str, message: str, **fields: Any) -> dict[str, Any]:
    return {"severity": severity, "message": message, "time": round(time.time(), 3), **fields}


def write(records: Iterable[dict[str, Any]]) -> None:
    """Writes the lines of many records at once: one write, not one per job."""
    text = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in records)
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def log_event(severity: str, message: str, **fields: Any) -> None:
    write([record(severity, message, **fields)])
