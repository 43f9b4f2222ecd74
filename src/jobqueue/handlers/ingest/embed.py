"""Embeddings from an OpenAI-compatible endpoint (POST {url}/embeddings, a bearer key), in
batches with httpx. 429 and 5xx are retried with backoff; any other 4xx fails for good."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from jobqueue.handlers.ingest.retry import retry_after
from jobqueue.worker.registry import PermanentJobError, RetryJobError


class Embedder:
    def __init__(self, url: str, model: str, key: str | None, timeout: float = 60) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self._model = model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        try:
            response = self._client.post(
                "/embeddings", json={"model": self._model, "input": list(texts)}
            )
        except httpx.HTTPError as exc:
            raise RetryJobError(f"embeddings endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryJobError(
                f"embeddings endpoint answered {response.status_code}",
                retry_after(response),
            )
        if not response.is_success:
            raise PermanentJobError(
                f"embeddings endpoint refused the request: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise RetryJobError(
                f"embeddings endpoint answered something unexpected: {exc}"
            ) from None
        if len(vectors) != len(texts):
            raise RetryJobError(
                f"embeddings endpoint returned {len(vectors)} vectors for {len(texts)} inputs"
            )
        return vectors

    def close(self) -> None:
        self._client.close()
