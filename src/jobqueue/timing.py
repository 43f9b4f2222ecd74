"""Where a request's time went, by stage, answered in a ``Server-Timing`` header.

A queue this fast is bound by round trips and per-job overhead, not by its handlers, so every
gain has to be attributed to a stage before it is believed: ``bench/drain.py`` reads the header
of each call and prints the profile. The header is the W3C one that browsers' and proxies' tools
already show (``parse;dur=0.081, claim;dur=1.502, ...``, milliseconds), and it is added only to
an authorised request's answer. Outside a measured request every function here does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_stages: ContextVar[dict[str, float] | None] = ContextVar("jobqueue_stages", default=None)


@contextmanager
def measured() -> Iterator[None]:
    """Collects the stages of one request (seconds by name) for the duration of the block."""
    token = _stages.set({})
    try:
        yield
    finally:
        _stages.reset(token)


def add(name: str, seconds: float) -> None:
    """Adds time measured elsewhere (a job's duration) to a stage."""
    stages = _stages.get()
    if stages is not None:
        stages[name] = stages.get(name, 0.0) + seconds


@contextmanager
def stage(name: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - began)


def server_timing() -> str:
    """The current request's stages as a Server-Timing value, in the order they first ran."""
    stages = _stages.get() or {}
    return ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in stages.items())
