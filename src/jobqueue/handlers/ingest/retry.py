"""How long a peer (Storage, the embeddings endpoint) is given before the next attempt."""

from __future__ import annotations

import httpx


def retry_after(response: httpx.Response) -> float | None:
    """The peer's own Retry-After, in seconds, when it gave one."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def backoff(attempt: int) -> float:
    """5 s, 10 s, 20 s ... capped at 10 minutes."""
    return float(min(600, 5 * 2 ** max(0, attempt - 1)))
