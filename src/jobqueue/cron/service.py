"""One tick: call worker_pull up to ``iterations`` times, ``concurrency`` calls at a time.

A failed call (timeout, no connection, non-2xx) is counted and the tick goes on; three in a row
mean worker_pull is down and the tick stops rather than hammering it. The budget keeps a tick
inside its platform's timeout: no call starts once it has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from jobqueue.cron.models import TickRequest
from jobqueue.log import log_event
from jobqueue.settings import CronSettings

MAX_ERRORS_IN_A_ROW = 3


@dataclass(frozen=True)
class CallResult:
    ok: bool
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    queue_empty: bool = False


class CronService:
    def __init__(
        self,
        settings: CronSettings,
        client: httpx.Client,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        self._client.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def tick(self, request: TickRequest) -> dict[str, Any]:
        started = self._clock()
        budget_ends = started + self._settings.cron_tick_budget_seconds
        body = {} if request.max_jobs is None else {"max_jobs": request.max_jobs}
        calls = processed = succeeded = failed = errors = errors_in_a_row = 0
        stopped = "iterations"
        while calls < request.iterations:
            pause = request.delay / 1000.0 if calls else 0.0
            # Never sleep past the budget: the tick must end inside its platform's timeout.
            if self._clock() + pause >= budget_ends:
                stopped = "budget"
                break
            if pause:
                self._sleep(pause)
            size = min(request.concurrency, request.iterations - calls)
            results = self._round(body, size)
            calls += size
            for result in results:
                processed += result.processed
                succeeded += result.succeeded
                failed += result.failed
                errors += 0 if result.ok else 1
                errors_in_a_row = 0 if result.ok else errors_in_a_row + 1
            if any(result.queue_empty for result in results):
                stopped = "queue_empty"
                break
            if errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                stopped = "errors"
                break
        summary = {
            "iterations": request.iterations,
            "calls": calls,
            "processed": processed,
            "succeeded": succeeded,
            "failed": failed,
            "errors": errors,
            "stopped": stopped,
            "duration_ms": round((self._clock() - started) * 1000.0, 1),
        }
        log_event("WARNING" if errors else "INFO", "cron tick finished", **summary)
        return summary

    def _round(self, body: dict[str, Any], size: int) -> list[CallResult]:
        if size == 1:
            return [self._call(body)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(50, thread_name_prefix="cron-tick")
        return list(self._pool.map(lambda _: self._call(body), range(size)))

    def _call(self, body: dict[str, Any]) -> CallResult:
        try:
            response = self._post(body)
        except httpx.TimeoutException:
            return self._failed("worker_pull timed out")
        except httpx.HTTPError as exc:
            return self._failed(f"worker_pull unreachable: {type(exc).__name__}")
        if not response.is_success:
            return self._failed(f"worker_pull answered {response.status_code}")
        try:
            answer = response.json()
            jobs = answer.get("jobs") or []
            done = sum(1 for job in jobs if job.get("status") == "done")
            return CallResult(
                ok=True,
                processed=int(answer.get("processed", 0)),
                succeeded=done,
                failed=sum(1 for job in jobs if job.get("status") in ("failed", "queued")),
                queue_empty=bool(answer.get("queue_empty", False)),
            )
        except (ValueError, AttributeError, TypeError):
            return self._failed("worker_pull answered something that is not its JSON summary")

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        """One POST; sent again once if the connection closed before any answer came back.

        That is what a kept-alive connection looks like when the server timed it out just as
        it was reused: the request never ran. Were it to have run, a second call only
        processes more jobs, which leases and fencing make safe.
        """
        headers = {"x-job-worker-secret": self._settings.job_worker_secret.get_secret_value()}
        url = str(self._settings.worker_pull_url)
        timeout = self._settings.worker_pull_timeout_seconds
        try:
            return self._client.post(url, json=body, headers=headers, timeout=timeout)
        except httpx.RemoteProtocolError:
            return self._client.post(url, json=body, headers=headers, timeout=timeout)

    def _failed(self, problem: str) -> CallResult:
        log_event("WARNING", "worker_pull call failed", problem=problem)
        return CallResult(ok=False)
