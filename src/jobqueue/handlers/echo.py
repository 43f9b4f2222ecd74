"""``echo``: a diagnostic job for checking a deployment end to end; its output is its input."""

from __future__ import annotations

from typing import Any

from jobqueue.worker.context import JobContext
from jobqueue.worker.registry import PermanentJobError, job_handler

MAX_SLEEP_MS = 600_000


# Its own limit covers the longest sleep it accepts; the lease is renewed as it sleeps.
@job_handler("echo", timeout_seconds=MAX_SLEEP_MS / 1000 + 60)
def echo(input: Any, ctx: JobContext) -> Any:
    if not isinstance(input, dict):
        raise PermanentJobError("echo input must be a JSON object")
    sleep_ms = input.get("sleep_ms", 0)
    if type(sleep_ms) is not int or not 0 <= sleep_ms <= MAX_SLEEP_MS:
        raise PermanentJobError(f"sleep_ms must be an integer from 0 to {MAX_SLEEP_MS}")
    for key in ("fail", "fail_permanently"):
        if key in input and not isinstance(input[key], str):
            raise PermanentJobError(f"{key} must be a string (the error message)")
    if sleep_ms:
        ctx.sleep(sleep_ms / 1000.0)
    if "fail_permanently" in input:
        raise PermanentJobError(input["fail_permanently"])
    if "fail" in input:
        raise RuntimeError(input["fail"])
    return input
