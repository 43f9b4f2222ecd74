"""What a worker_pull call answers and logs about each job it finished: the answer's entry
(the job's status after the commit) and one log line, which carries the error of a job that
did not succeed but never its input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobqueue import log
from jobqueue.store.base import Finished, Outcome


class CallReport:
    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []

    def add(self, settled: Sequence[tuple[Outcome, Finished | None]]) -> None:
        log.write([self._entry(outcome, finished) for outcome, finished in settled])

    def _entry(self, outcome: Outcome, finished: Finished | None) -> dict[str, Any]:
        """Adds the job to the answer; returns its log record."""
        job = outcome.job
        status = finished.status if finished else "unknown"
        error = finished.error if finished else outcome.error
        duration_ms = round(outcome.duration_ms, 3)
        snoozed = outcome.snooze_ms is not None and status == "queued"
        entry: dict[str, Any] = {
            "id": job.id,
            "type": job.type,
            "status": status,
            "attempts": job.attempt,
            "error": None if snoozed else error,
            "duration_ms": duration_ms,
        }
        if snoozed:
            entry["snoozed"] = True
        self.jobs.append(entry)
        return log.record(
            "INFO" if status == "done" else "WARNING",
            "job finished",
            job_id=job.id,
            type=job.type,
            attempt=job.attempt,
            outcome=status,
            accepted=finished.accepted if finished else False,
            duration_ms=duration_ms,
            # Why it failed: the handler's error, never the job's input.
            **({"error": error} if status != "done" and error else {}),
        )
