"""cron_tick on Cloud Run with a private worker_pull: each call carries a Google-signed ID token
for worker_pull's URL, which google-auth gets from the metadata server; here a local stand-in
of that server (google-auth honours GCE_METADATA_HOST and GCE_METADATA_IP)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jobqueue.tools.serving import serve

CRON_SECRET = "cron-secret-id-token"
WORKER_SECRET = "worker-secret-id-token"


def unsigned_jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_calls_carry_an_id_token_for_worker_pulls_url(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    audience = "https://worker-pull-abc123-uc.a.run.app"
    token = unsigned_jwt({"aud": audience, "exp": int(time.time()) + 3600, "iat": int(time.time())})
    metadata_calls: list[Request] = []
    worker_calls: list[Request] = []

    def metadata(request: Request) -> Response:
        metadata_calls.append(request)
        return Response(token, headers={"Metadata-Flavor": "Google"}, content_type="text/plain")

    def ping(request: Request) -> Response:
        return Response("", headers={"Metadata-Flavor": "Google"})

    def worker(request: Request) -> Response:
        worker_calls.append(request)
        body = {"processed": 0, "jobs": [], "queue_empty": True}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request(
        "/computeMetadata/v1/instance/service-accounts/default/identity"
    ).respond_with_handler(metadata)
    account = {
        "email": "cron-tick@my-project.iam.gserviceaccount.com",
        "aliases": ["default"],
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    httpserver.expect_request(
        "/computeMetadata/v1/instance/service-accounts/default/"
    ).respond_with_json(account, headers={"Metadata-Flavor": "Google"})
    httpserver.expect_request("/worker", method="POST").respond_with_handler(worker)
    httpserver.expect_request("/").respond_with_handler(ping)
    host = f"127.0.0.1:{httpserver.port}"
    env = {
        "CRON_SECRET": CRON_SECRET,
        "JOB_WORKER_SECRET": WORKER_SECRET,
        "WORKER_PULL_URL": httpserver.url_for("/worker"),
        "WORKER_PULL_ID_TOKEN_AUDIENCE": audience,
        "GCE_METADATA_HOST": host,
        "GCE_METADATA_IP": host,
    }
    with serve("cron_tick", env, tmp_path) as cron:
        for _ in range(2):
            answer = httpx.post(
                cron.url, json={"iterations": 1}, headers={"x-cron-secret": CRON_SECRET}, timeout=30
            )
            assert answer.status_code == 200, cron.output()
            assert answer.json()["errors"] == 0
    [fetched] = metadata_calls  # cached for the second tick
    assert fetched.args["audience"] == audience and fetched.args["format"] == "full"
    assert fetched.headers["Metadata-Flavor"] == "Google"
    assert len(worker_calls) == 2
    for call in worker_calls:
        assert call.headers["Authorization"] == f"Bearer {token}"
        assert call.headers["x-job-worker-secret"] == WORKER_SECRET
