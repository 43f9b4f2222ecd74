"""``echo``: a diagnostic job for checking a deployment end to end; its output is its input."""

from __future__ import annotations

from typing import Any

from jobqueue.handler import JobContext, PermanentJobError, SnoozeJob, job_handler

MAX_SLEEP_MS = 600_000
MAX_SNOOZE_MS = 86_400_000
MAX_SNOOZE_TIMES = 100


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
    snooze_ms = input.get("snooze_ms")
    snooze_times = input.get("snooze_times", 1)
    if snooze_ms is not None and (
        type(snooze_ms) is not int or not 1 <= snooze_ms <= MAX_SNOOZE_MS
    ):
        raise PermanentJobError(f"snooze_ms must be an integer from 1 to {MAX_SNOOZE_MS}")
    if type(snooze_times) is not int or not 1 <= snooze_times <= MAX_SNOOZE_TIMES:
        raise PermanentJobError(f"snooze_times must be an integer from 1 to {MAX_SNOOZE_TIMES}")
    # attempts counts every claim, snoozed ones included: the first snooze_times claims snooze.
    if snooze_ms is not None and ctx.attempt <= snooze_times:
        raise SnoozeJob(snooze_ms / 1000.0, f"echo snoozed for {snooze_ms} ms")
    if sleep_ms:
        ctx.sleep(sleep_ms / 1000.0)
    if "fail_permanently" in input:
        raise PermanentJobError(input["fail_permanently"])
    if "fail" in input:
        raise RuntimeError(input["fail"])
    return input
