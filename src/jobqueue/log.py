"""One JSON object per line on stdout: Cloud Logging and CloudWatch both parse it as fields.

``severity`` and ``message`` are the keys Cloud Logging maps to its own; callers pass only
identifiers and measurements, never secrets or job input.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def log_event(severity: str, message: str, **fields: Any) -> None:
    record = {"severity": severity, "message": message, "time": round(time.time(), 3), **fields}
    sys.stdout.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()
