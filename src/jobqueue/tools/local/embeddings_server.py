"""A local OpenAI-compatible embeddings endpoint for `jobqueue up`: no network, no model.

    POST /v1/embeddings   {"model", "input": [...]} -> {"data": [{"index", "embedding"}],
                                                        "usage": {"total_tokens"}}

A STAND-IN FOR DEMOS, NOT SEMANTIC: each text becomes the feature hashing of its words (and
word pairs) into DIMS dimensions, normalised, so texts sharing words are near each other and
`jobqueue search` answers offline. It knows nothing of meaning: "car" is not near "vehicle".
Point EMBEDDINGS_URL at a real provider for real search.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from werkzeug import Request, Response

from jobqueue.tools.local.server import LocalServer

DIMS = 256
MODEL = "local-hashing-demo-256"
_WORD = re.compile(r"\w+", re.UNICODE)


def hashed_vector(text: str, dims: int = DIMS) -> list[float]:
    words = [w.lower() for w in _WORD.findall(text)]
    vector = [0.0] * dims
    for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dims
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class LocalEmbeddings:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = LocalServer(self._app, host, port)
        self.url = f"{self._server.base_url}/v1"

    def __enter__(self) -> LocalEmbeddings:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            body = json.loads(request.get_data())
            texts = body["input"]
            texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        except (ValueError, KeyError, TypeError):
            answer = Response(
                json.dumps({"error": {"message": "expected {model, input}"}}),
                status=400,
                content_type="application/json",
            )
            return answer(environ, start_response)
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_vector(t)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(_WORD.findall(t)) for t in texts)
        answer = Response(
            json.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model", MODEL),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            ),
            content_type="application/json",
        )
        return answer(environ, start_response)
