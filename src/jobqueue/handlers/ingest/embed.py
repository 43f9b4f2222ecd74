"""Embeddings from an OpenAI-compatible endpoint (POST {url}/embeddings, a bearer key), in
batches with httpx, under the shared rate key ``embeddings:<model>``.

Before each call its requests and (estimated) tokens are acquired from the key's limits
(``ctx.acquire``: every instance shares them); after it the estimate is corrected with the
provider's ``usage``. A 429 pauses the key for every instance until the provider's reset
(``Retry-After``, ``x-ratelimit-reset-requests`` / ``-tokens``) and snoozes the job: a rate
limit never costs an attempt. So does a success that leaves nothing of the provider's budget
(``x-ratelimit-remaining-*`` of 0). 5xx and unreachable are retried with backoff; any other 4xx
fails for good.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx

from jobqueue.handlers.ingest.retry import retry_after
from jobqueue.worker.context import JobContext
from jobqueue.worker.registry import PermanentJobError, RetryJobError, SnoozeJob

# Without any hint from the provider, a 429 pauses the key this long.
DEFAULT_PAUSE_SECONDS = 60.0
# At most this long, whatever the provider says (a typo of a header must not stop us a day).
MAX_PAUSE_SECONDS = 3600.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def rate_key(model: str) -> str:
    return f"embeddings:{model}"


def estimate_tokens(texts: Sequence[str]) -> int:
    """About four characters a token, as OpenAI's tokenizers average on English; corrected
    by the answer's usage afterwards."""
    return sum(len(text) // 4 + 1 for text in texts)


def reset_seconds(value: str | None) -> float | None:
    """OpenAI's reset durations (``6m0s``, ``1s``, ``20ms``, ``1h2m3.5s``) or plain seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    unit = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * unit[u] for n, u in parts)


def pause_for(response: httpx.Response) -> float:
    """How long the provider asked every caller to stay away."""
    hints = [
        retry_after(response),
        reset_seconds(response.headers.get("x-ratelimit-reset-requests"))
        if response.headers.get("x-ratelimit-remaining-requests", "").strip() in ("0", "")
        else None,
        reset_seconds(response.headers.get("x-ratelimit-reset-tokens"))
        if response.headers.get("x-ratelimit-remaining-tokens", "").strip() in ("0", "")
        else None,
    ]
    known = [h for h in hints if h is not None]
    return min(MAX_PAUSE_SECONDS, max(known) if known else DEFAULT_PAUSE_SECONDS)


class Embedder:
    def __init__(
        self, url: str, model: str, key: str | None, ctx: JobContext, timeout: float = 60
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.model = model
        self._key = rate_key(model)
        self._ctx = ctx

    def _pause(self, seconds: float, why: str) -> SnoozeJob:
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        self._ctx.call("pause_rate_limit", p_key=self._key, p_until=until.isoformat())
        return SnoozeJob(seconds, f"{why}: {self._key} paused for {seconds:.1f} s")

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        estimate = estimate_tokens(texts)
        self._ctx.acquire(self._key, requests=1, tokens=estimate)
        try:
            response = self._client.post(
                "/embeddings", json={"model": self.model, "input": list(texts)}
            )
        except httpx.HTTPError as exc:
            raise RetryJobError(f"embeddings endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code == 429:
            raise self._pause(pause_for(response), "embeddings endpoint answered 429")
        if response.status_code >= 500:
            raise RetryJobError(
                f"embeddings endpoint answered {response.status_code}", retry_after(response)
            )
        if not response.is_success:
            raise PermanentJobError(
                f"embeddings endpoint refused the request: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        try:
            body = response.json()
            data = sorted(body["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise RetryJobError(
                f"embeddings endpoint answered something unexpected: {exc}"
            ) from None
        if len(vectors) != len(texts):
            raise RetryJobError(
                f"embeddings endpoint returned {len(vectors)} vectors for {len(texts)} inputs"
            )
        used = (body.get("usage") or {}).get("total_tokens") if isinstance(body, dict) else None
        if isinstance(used, int) and used != estimate:
            self._ctx.call("adjust_rate", p_key=self._key, p_tokens=used - estimate)
        self._respect_remaining(response)
        return vectors

    def _respect_remaining(self, response: httpx.Response) -> None:
        """The provider says its budget is spent: pause the key until its reset, so no
        instance sends the request that would be refused."""
        for kind in ("requests", "tokens"):
            if response.headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0":
                seconds = reset_seconds(response.headers.get(f"x-ratelimit-reset-{kind}"))
                if seconds:
                    until = datetime.now(UTC) + timedelta(seconds=min(seconds, MAX_PAUSE_SECONDS))
                    self._ctx.call("pause_rate_limit", p_key=self._key, p_until=until.isoformat())

    def close(self) -> None:
        self._client.close()
