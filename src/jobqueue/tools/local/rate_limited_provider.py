"""An OpenAI-shaped embeddings provider that enforces its own budget, for the rate-limit test
and bench/rate.py: at most ``budget`` requests in any 60 s (an exact sliding window), beyond it
a real 429 with OpenAI's headers (``x-ratelimit-remaining-requests``,
``x-ratelimit-reset-requests``, ``Retry-After``). It records every arrival, so a caller can
check that no minute window ever held more than the budget."""

from __future__ import annotations

import json
import threading
import time
from collections import deque

from werkzeug import Request, Response


class RateLimitedProvider:
    """A werkzeug handler (``provider(request) -> response``) for POST .../embeddings."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.lock = threading.Lock()
        self.accepted: deque[float] = deque()
        self.arrivals: list[float] = []
        self.refused = 0

    def __call__(self, request: Request) -> Response:
        now = time.monotonic()
        with self.lock:
            self.arrivals.append(now)
            while self.accepted and self.accepted[0] <= now - 60:
                self.accepted.popleft()
            remaining = self.budget - len(self.accepted)
            if remaining <= 0:
                self.refused += 1
                reset = 60 - (now - self.accepted[0])
                return Response(
                    json.dumps({"error": {"message": "Rate limit reached", "type": "requests"}}),
                    status=429,
                    headers={
                        "x-ratelimit-limit-requests": str(self.budget),
                        "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": f"{reset:.3f}s",
                        "retry-after": str(int(reset) + 1),
                    },
                    content_type="application/json",
                )
            self.accepted.append(now)
        body = json.loads(request.get_data())
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, float(i)]}
            for i, _ in enumerate(body["input"])
        ]
        tokens = sum(len(text) // 4 + 1 for text in body["input"])
        return Response(
            json.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            ),
            headers={
                "x-ratelimit-limit-requests": str(self.budget),
                "x-ratelimit-remaining-requests": str(remaining - 1),
                "x-ratelimit-reset-requests": "1s",
            },
            content_type="application/json",
        )

    def windows(self) -> list[int]:
        """Requests in each 60 s window that starts at an arrival."""
        arrivals = sorted(self.arrivals)
        return [sum(1 for t in arrivals if start <= t < start + 60) for start in arrivals]

    def most_in_a_minute(self) -> int:
        return max(self.windows(), default=0)
