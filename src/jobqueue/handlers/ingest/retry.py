"""How long a peer (Storage, the embeddings endpoint) asked to be given before the next attempt.
Without one, a retry waits for the queue's own backoff (``job_retry_delay`` in SQL, with
jitter); whatever a peer asks is capped by JOB_MAX_RETRY_DELAY_SECONDS."""

from __future__ import annotations

import httpx


def retry_after(response: httpx.Response) -> float | None:
    """The peer's own Retry-After, in seconds, when it gave one as a number."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None
