"""Runs one handler with a time limit, in the calling thread.

A hand-off to another thread per job costs about 50 µs, as much as the rest of a no-op job's
work, so handlers run inline and one watchdog thread (per process) polls the deadlines of
running handlers. A handler past its deadline gets ``JobTimeout`` raised inside it at its next
Python instruction; a handler blocked inside a C call (a read without a timeout, say) is
interrupted when that call returns. Until then its lease is kept alive (``keep_alive``, every
third of a lease), so no other worker takes a job that is still running: a job is never run
twice at once. Whatever the handler does once its deadline has passed (return, swallow the
``JobTimeout``), the attempt counts as timed out. Long handlers should use ``ctx.sleep`` and
``ctx.check_deadline`` and give their network calls timeouts.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobqueue.worker.context import JobTimeout

POLL_SECONDS = 0.02


@dataclass
class _Watch:
    thread_id: int
    deadline: Callable[[], float]
    keep_alive: Callable[[], object] | None = None
    keep_every: float = 1.0
    fired: bool = False
    next_keep: float = 0.0


class _Watchdog:
    def __init__(self) -> None:
        self._watches: dict[int, _Watch] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def arm(self, watch: _Watch) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="job-watchdog", daemon=True
                    )
                    self._thread.start()
        self._watches[watch.thread_id] = watch

    def disarm(self, watch: _Watch) -> None:
        with self._lock:
            if self._watches.get(watch.thread_id) is watch:
                del self._watches[watch.thread_id]
            if watch.fired:
                # Withdraw the exception if the handler returned before it was raised.
                _raise_in(watch.thread_id, None)

    def _loop(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            now = time.monotonic()
            with self._lock:
                for watch in list(self._watches.values()):
                    if not watch.fired and now >= watch.deadline():
                        watch.fired = True
                        watch.next_keep = now
                        _raise_in(watch.thread_id, JobTimeout)
                    if watch.fired and watch.keep_alive and now >= watch.next_keep:
                        # Still running past its deadline: stuck in a C call. Its own thread,
                        # so a slow database never delays another handler's interruption.
                        watch.next_keep = now + watch.keep_every
                        threading.Thread(
                            target=_quietly, args=(watch.keep_alive,), daemon=True
                        ).start()


def _quietly(func: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # the next renewal tries again
        func()


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )


_watchdog = _Watchdog()


def run_with_limit(
    func: Callable[[], Any],
    deadline: Callable[[], float],
    keep_alive: Callable[[], object] | None = None,
    keep_every: float = 1.0,
) -> Any:
    """``func()``, or ``JobTimeout`` once ``time.monotonic()`` passes ``deadline()`` (read
    afresh at each check, so a renewed lease can move it). ``keep_alive`` renews the job's
    lease, every ``keep_every`` seconds, while a handler runs on past its deadline."""
    started = time.monotonic()
    watch = _Watch(threading.get_ident(), deadline, keep_alive, keep_every)
    _watchdog.arm(watch)
    timed_out = False
    try:
        result = func()
    except JobTimeout:
        timed_out = True
    finally:
        _watchdog.disarm(watch)
    if timed_out or watch.fired:
        ran = time.monotonic() - started
        raise JobTimeout(f"handler ran past its time limit ({ran:.3f} s)")
    return result
