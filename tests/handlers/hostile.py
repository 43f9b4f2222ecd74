"""Job types that misbehave on purpose, loaded by served functions through JOB_HANDLER_MODULES
(and in process by importing this module). The job's input says how to misbehave."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from jobqueue.worker.context import JobContext, JobTimeout
from jobqueue.worker.registry import RetryJobError, job_handler

POISON_OUTPUTS: dict[str, Any] = {
    "nan": float("nan"),
    "infinity": {"x": float("inf")},
    "nul": {"text": "a\x00b"},
    "surrogate": ["\ud800"],
    "nul_key": {"k\x00": 1},
    "deep": 0,  # built below
    "huge_int": 10**5000,  # beyond what Python's json writes: refused while encoding
}
_deep: Any = 1
for _ in range(200):
    _deep = [_deep]
POISON_OUTPUTS["deep"] = _deep


@job_handler("poison_output")
def poison_output(input: Any, ctx: JobContext) -> Any:
    return POISON_OUTPUTS[input["kind"]]


@job_handler("poison_error")
def poison_error(input: Any, ctx: JobContext) -> Any:
    if input["kind"] == "retry_far":
        raise RetryJobError("come back much later", 1e13)
    if input["kind"] == "retry_nan":
        raise RetryJobError("come back whenever", float("nan"))
    raise RuntimeError("bad \x00 byte and a lone \ud800 surrogate")


class _Bare(BaseException):
    pass


@job_handler("escape")
def escape(input: Any, ctx: JobContext) -> Any:
    kind = input["kind"]
    if kind == "exit":
        sys.exit(3)
    if kind == "keyboard":
        raise KeyboardInterrupt
    if kind == "generator_exit":
        raise GeneratorExit
    raise _Bare("bare BaseException")


@job_handler("blocked", timeout_seconds=600)
def blocked(input: Any, ctx: JobContext) -> Any:
    time.sleep(input["seconds"])  # one C call: the watchdog cannot interrupt it
    return "woke"


@job_handler("stubborn", timeout_seconds=0.3)
def stubborn(input: Any, ctx: JobContext) -> Any:
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        with contextlib.suppress(JobTimeout):  # swallowed: it must still count as timed out
            time.sleep(0.01)
    return "pretended to finish"
