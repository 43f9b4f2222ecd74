"""A job type of the user's own, as the README's "Adding a job type" writes one: loaded by
JOB_HANDLER_MODULES=tests.handlers.extra."""

from __future__ import annotations

from typing import Any

from jobqueue.handler import JobContext, PermanentJobError, job_handler


@job_handler("double", timeout_seconds=10)
def double(input: Any, ctx: JobContext) -> dict[str, int]:
    if not isinstance(input, dict) or type(input.get("n")) is not int:
        raise PermanentJobError("input.n must be an integer")
    return {"n": input["n"] * 2}
