"""The lease guardian: a separate process that keeps this worker's leases alive.

A lease renewed from inside the worker can be stopped by the worker itself: a handler holding
the GIL in one long C call (``sum(range(10**9))``) stops every Python thread, the watchdog
included, and another worker would take the job while it still runs. So each worker process
starts one guardian (``python -m jobqueue.worker.guardian``, its own interpreter and its own
database connection) and tells it over a pipe which claims it holds: every claimed batch, until
its outcomes are committed or it is given back. The guardian renews all of them every third of
a lease, so neither a GIL-holding handler nor a handler blocked past its lease lets a job (its
own, or a batch-mate waiting behind it) be claimed twice while the worker lives.

It renews a hold only until the hold's own end (the call's budget plus the longest handler
limit in the batch), so a worker wedged for good still loses its jobs to the rescuer. When the
worker process dies (``os._exit``, OOM kill), the pipe closes and the guardian shortens the
leases it held to a second, so the rescuer requeues that work at once instead of after a whole
lease; the attempt is recorded as ``expired`` and counts, as a crash should. A call that lost
the database hands its unfinished claims over the same way (``abandon``), and the guardian
retries until the database is back.

Messages are JSON lines: ``{"hold": [[id, attempt], ...], "until": s}`` (``until`` in seconds
from now), ``{"drop": [[id, attempt], ...]}``, ``{"abandon": [[id, attempt], ...]}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from jobqueue.store.base import ClaimedJob, QueueStore

Claim = tuple[int, int]


class Guardian:
    """The worker's side: starts the guardian process lazily and sends it what it holds."""

    def __init__(self, lease_seconds: int) -> None:
        self._lease = lease_seconds
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._failed = False

    @property
    def alive(self) -> bool:
        """True while the guardian process runs (it renews what this worker holds)."""
        process = self._process
        return process is not None and process.poll() is None

    def hold(self, jobs: Sequence[ClaimedJob], seconds: float) -> None:
        self._send({"hold": _claims(jobs), "until": seconds})

    def drop(self, jobs: Sequence[ClaimedJob]) -> None:
        self._send({"drop": _claims(jobs)})

    def abandon(self, jobs: Sequence[ClaimedJob]) -> None:
        self._send({"abandon": _claims(jobs)})

    def _send(self, message: dict[str, Any]) -> None:
        if not next(iter(message.values())):
            return
        line = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        with self._lock:
            pipe = self._pipe()
            if pipe is None:
                return
            try:
                pipe.write(line)
                pipe.flush()
            except OSError:  # it died: start another at the next message
                self._process = None

    def _pipe(self) -> IO[bytes] | None:
        process = self._process
        if process is not None and process.poll() is None and process.stdin is not None:
            return process.stdin
        if self._failed:
            return None
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "JOBQUEUE_GUARDIAN_PARENT": str(os.getpid()),
            "JOBQUEUE_GUARDIAN_LEASE": str(self._lease),
        }
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "jobqueue.worker.guardian"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        except OSError:
            self._failed = True  # no subprocesses here: the in-process renewals remain
            return None
        return self._process.stdin

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


def _claims(jobs: Sequence[ClaimedJob]) -> list[list[int]]:
    return [[job.id, job.attempt] for job in jobs]


def _jobs(claims: Sequence[Claim]) -> list[ClaimedJob]:
    return [ClaimedJob(id, "", None, attempt) for id, attempt in claims]


class _Keeper:
    """The guardian's side: what it holds, and the renewals."""

    def __init__(self, store: QueueStore, lease: int) -> None:
        self.store = store
        self.lease = lease
        self.held: dict[Claim, float] = {}  # claim -> monotonic end of the hold
        self.abandoned: set[Claim] = set()

    def take(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        for claim in message.get("hold", []):
            self.held[(int(claim[0]), int(claim[1]))] = now + float(message.get("until", 0))
        for claim in message.get("drop", []):
            self.held.pop((int(claim[0]), int(claim[1])), None)
        for claim in message.get("abandon", []):
            key = (int(claim[0]), int(claim[1]))
            self.held.pop(key, None)
            self.abandoned.add(key)

    def renew(self) -> None:
        now = time.monotonic()
        self.held = {claim: end for claim, end in self.held.items() if end > now}
        if self.held:
            with contextlib.suppress(Exception):  # the next round tries again
                self.store.extend_leases(_jobs(list(self.held)), self.lease)
        self.expire_abandoned()

    def expire_abandoned(self) -> None:
        """Leases of a second, fenced by attempt: the rescuer takes them at the next claim."""
        if self.abandoned:
            with contextlib.suppress(Exception):
                self.store.extend_leases(_jobs(list(self.abandoned)), 1)
                self.abandoned.clear()


def main() -> None:
    from jobqueue import settings
    from jobqueue.store.opening import open_store

    parent = int(os.environ.get("JOBQUEUE_GUARDIAN_PARENT", "0"))
    lease = int(os.environ.get("JOBQUEUE_GUARDIAN_LEASE", "300"))
    keeper = _Keeper(open_store(settings.load(settings.WorkerSettings)), lease)
    every = max(0.2, lease / 3)
    stdin = sys.stdin.buffer
    pending = b""
    next_renewal = time.monotonic() + every
    while True:
        wait = max(0.0, next_renewal - time.monotonic())
        readable, _, _ = select.select([stdin], [], [], wait)
        if readable:
            data = os.read(stdin.fileno(), 65536)
            if not data or os.getppid() != parent:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    keeper.take(json.loads(line))
            keeper.expire_abandoned()
        if time.monotonic() >= next_renewal:
            keeper.renew()
            next_renewal = time.monotonic() + every
    # The worker is gone: what it still held is lost work; let the rescuer have it now.
    keeper.abandoned |= set(keeper.held)
    for _ in range(30):
        keeper.expire_abandoned()
        if not keeper.abandoned:
            break
        time.sleep(1)


if __name__ == "__main__":
    main()
