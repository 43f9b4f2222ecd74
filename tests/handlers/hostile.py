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


def _record(input: Any, ctx: JobContext, event: str) -> None:
    """Appends ``event job attempt pid time`` to the file the input names: the handler's own
    account of when it ran, independent of what the queue recorded."""
    import os

    with open(input["record"], "a", encoding="utf-8") as out:
        out.write(f"{event} {ctx.job_id} {ctx.attempt} {os.getpid()} {time.time():.6f}\n")


@job_handler("gil_hold", timeout_seconds=600)
def gil_hold(input: Any, ctx: JobContext) -> Any:
    """One C call that never releases the GIL: no other thread of this process runs."""
    _record(input, ctx, "start")
    total = sum(range(input["n"]))
    _record(input, ctx, "end")
    return total % 7


@job_handler("recorded", timeout_seconds=600)
def recorded(input: Any, ctx: JobContext) -> Any:
    """Records its run; with ``block`` seconds it blocks in one C call first (time.sleep)."""
    _record(input, ctx, "start")
    if input.get("block"):
        time.sleep(input["block"])
    _record(input, ctx, "end")
    return "ok"


@job_handler("forks")
def forks(input: Any, ctx: JobContext) -> Any:
    """Forks and returns in both processes, as a careless handler might."""
    import os

    os.fork()
    return {"pid": os.getpid()}


@job_handler("exits")
def exits(input: Any, ctx: JobContext) -> Any:
    """Ends the whole process at once: nothing in-process can contain this."""
    import os

    os._exit(1)
