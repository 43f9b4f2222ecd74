"""Runs one handler with a time limit.

Handlers run on one reusable thread so that a limit costs no thread start per job. A handler
still running at its limit is asked to stop (an exception raised inside its thread, which takes
effect at its next Python instruction) and its thread is abandoned for a fresh one.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from jobqueue.worker.context import JobTimeout


class HandlerRunner:
    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._thread_id: int | None = None

    def run(self, func: Callable[[], Any], timeout: float) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="job-handler")
        future: Future[Any] = self._executor.submit(self._call, func)
        try:
            return future.result(timeout=max(timeout, 0.001))
        except FutureTimeout:
            self._abandon()
            raise JobTimeout(f"handler ran past its time limit of {timeout:.3f} s") from None

    def _call(self, func: Callable[[], Any]) -> Any:
        self._thread_id = threading.get_ident()
        return func()

    def _abandon(self) -> None:
        executor, thread_id = self._executor, self._thread_id
        self._executor, self._thread_id = None, None
        if thread_id is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread_id), ctypes.py_object(JobTimeout)
            )
        if executor is not None:
            executor.shutdown(wait=False)
