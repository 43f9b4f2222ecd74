"""One tick: call worker_pull up to ``iterations`` times, ``concurrency`` calls at a time.

A failed call (timeout, no connection, non-2xx, an answer that is not worker_pull's summary) is
counted and the tick goes on; three in a row mean worker_pull is down and the tick stops rather
than hammering it. The budget keeps a tick inside its platform's timeout: no call starts once
it has passed, and each call ends within WORKER_PULL_TIMEOUT_SECONDS in all, however slowly
its answer trickles in (asyncio cancels it; httpx's own timeouts bound each read, not the
whole call).

A warm instance keeps one event loop, on a thread of its own, and one HTTP client on it: every
tick is a coroutine on that loop, so the connections to worker_pull stay open from one tick to
the next (a new loop per tick meant a new client, and new connections, every minute).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobqueue.cron.models import TickRequest
from jobqueue.log import log_event
from jobqueue.settings import CronSettings

MAX_ERRORS_IN_A_ROW = 3
# worker_pull's answer for 100 jobs with long errors stays well below this.
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class _Job(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    status: str | None = None
    snoozed: bool = False


class _Answer(BaseModel):
    """worker_pull's summary, read strictly: ``"false"`` is not false, nor 1e999 a count."""

    model_config = ConfigDict(extra="ignore", strict=True)
    processed: int = Field(ge=0, le=10_000)
    jobs: list[_Job] = Field(default_factory=list, max_length=10_000)
    queue_empty: bool


@dataclass(frozen=True)
class CallResult:
    ok: bool
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    snoozed: int = 0
    queue_empty: bool = False


class _NoAnswer(Exception):
    """The call ended without an answer worth reading; the message says why."""


class CronService:
    def __init__(
        self,
        settings: CronSettings,
        headers: Callable[[], dict[str, str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._extra_headers = headers
        self._clock = clock
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None

    def close(self) -> None:
        """Closes the kept-alive connections and stops the instance's loop."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close_client(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    def tick(self, request: TickRequest) -> dict[str, Any]:
        # Extra headers (an ID token) are fetched once per tick, before any call: they last
        # far longer than a tick, and fetching them may block.
        headers = {"x-job-worker-secret": self._settings.job_worker_secret.get_secret_value()}
        if self._extra_headers is not None:
            headers.update(self._extra_headers())
        future = asyncio.run_coroutine_threadsafe(self._tick(request, headers), self._running())
        return future.result()

    def _running(self) -> asyncio.AbstractEventLoop:
        """The instance's loop, started at its first tick (after any fork of the server)."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="cron-tick", daemon=True)
                thread.start()
                self._loop, self._thread, self._client = loop, thread, None
            return self._loop

    def _shared_client(self) -> httpx.AsyncClient:
        """Made on the loop's thread, and used only there."""
        if self._client is None:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            self._client = httpx.AsyncClient(limits=limits)
        return self._client

    async def _close_client(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _tick(self, request: TickRequest, headers: dict[str, str]) -> dict[str, Any]:
        started = self._clock()
        budget_ends = started + self._settings.cron_tick_budget_seconds
        body = {} if request.max_jobs is None else {"max_jobs": request.max_jobs}
        calls = processed = succeeded = failed = snoozed = errors = errors_in_a_row = 0
        stopped = "iterations"
        client = self._shared_client()
        while calls < request.iterations:
            pause = request.delay_ms / 1000.0 if calls else 0.0
            # Never sleep past the budget: the tick must end inside its platform's timeout.
            if self._clock() + pause >= budget_ends:
                stopped = "budget"
                break
            if pause:
                await asyncio.sleep(pause)
            size = min(request.concurrency, request.iterations - calls)
            results = await asyncio.gather(
                *(self._call(client, body, headers) for _ in range(size))
            )
            calls += size
            for result in results:
                processed += result.processed
                succeeded += result.succeeded
                failed += result.failed
                snoozed += result.snoozed
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
            "snoozed": snoozed,
            "errors": errors,
            "stopped": stopped,
            "duration_ms": round((self._clock() - started) * 1000.0, 1),
        }
        log_event("WARNING" if errors else "INFO", "cron tick finished", **summary)
        return summary

    async def _call(
        self, client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
    ) -> CallResult:
        timeout = self._settings.worker_pull_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                status, content = await self._post(client, body, headers)
        except TimeoutError:
            return _failed(f"worker_pull did not answer within {timeout:g} s")
        except _NoAnswer as exc:
            return _failed(str(exc))
        except httpx.HTTPError as exc:
            return _failed(f"worker_pull unreachable: {type(exc).__name__}")
        if not 200 <= status < 300:
            return _failed(f"worker_pull answered {status}")
        try:
            answer = _Answer.model_validate(json.loads(content))
        except (ValueError, RecursionError, ValidationError):
            return _failed("worker_pull answered something that is not its JSON summary")
        return CallResult(
            ok=True,
            processed=answer.processed,
            succeeded=sum(1 for job in answer.jobs if job.status == "done"),
            # A snoozed job waits for its time; it is not a failed attempt.
            failed=sum(
                1 for job in answer.jobs if job.status in ("failed", "queued") and not job.snoozed
            ),
            snoozed=sum(1 for job in answer.jobs if job.snoozed),
            queue_empty=answer.queue_empty,
        )

    async def _post(
        self, client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """One POST; sent again once if the connection closed before the answer's headers.

        That is what a kept-alive connection looks like when the server timed it out just as
        it was reused: the request never ran. Once headers have arrived the call is never
        resent (it ran); were a resent one to have run after all, a second call only processes
        more jobs, which leases and fencing make safe.
        """
        try:
            return await self._post_once(client, body, headers)
        except httpx.RemoteProtocolError:
            return await self._post_once(client, body, headers)

    async def _post_once(
        self, client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        timeout = self._settings.worker_pull_timeout_seconds
        request = client.build_request(
            "POST",
            str(self._settings.worker_pull_url),
            json=body,
            headers=headers,
            timeout=timeout,
        )
        response = await client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise _NoAnswer("worker_pull's answer is larger than it can be")
            return response.status_code, b"".join(chunks)
        except httpx.HTTPError as exc:
            raise _NoAnswer(f"worker_pull's answer broke off: {type(exc).__name__}") from None
        finally:
            await response.aclose()


def _failed(problem: str) -> CallResult:
    log_event("WARNING", "worker_pull call failed", problem=problem)
    return CallResult(ok=False)
