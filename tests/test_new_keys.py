"""Today's Supabase keys everywhere a key is sent (issue 18, item 4): the REST store and the
runbook's scripts send a new secret key (sb_secret_...) in apikey only, which is all Supabase
accepts of it; the legacy JWT key still goes both ways."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support import postgrest
from tests.support.functions import client
from tests.support.queue import Conn, insert_job, job
from tests.support.scripts import run_script
from tests.support.supabase_keys import supabase_accepts

NEW_KEY = "sb_secret_7pX0cGmIkq0ZqlzJHmZgTw_4xPq9LdY"
SECRET = "worker-secret-keys"


def test_the_rest_store_works_with_a_new_secret_key(
    db: str, conn: Conn, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DATABASE_URL: the queue over PostgREST, whose stand-in refuses sb_secret_ as bearer."""
    url = postgrest.install(httpserver, db, NEW_KEY)
    app = client(
        "worker_pull",
        {"JOB_WORKER_SECRET": SECRET, "SUPABASE_URL": url, "SUPABASE_SECRET_KEY": NEW_KEY},
        monkeypatch,
    )
    job_id = insert_job(conn, "echo", {"via": "rest"})
    answer = app.post("/", json={}, headers={"x-job-worker-secret": SECRET}).get_json()
    assert answer["jobs"][0]["status"] == "done" and job(conn, job_id)["status"] == "done"
    sent = httpserver.log[0][0].headers
    assert sent.get("apikey") == NEW_KEY and "Authorization" not in sent


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SUPABASE_SECRET_KEY": NEW_KEY}, NEW_KEY),
        ({"SUPABASE_SERVICE_ROLE_KEY": "legacy.jwt.key"}, "legacy.jwt.key"),
    ],
)
def test_the_scripts_send_each_kind_of_key_as_supabase_accepts_it(
    httpserver: HTTPServer, env: dict[str, str], key: str
) -> None:
    seen: list[Any] = []

    def answer(request: Request) -> Response:
        seen.append(dict(request.headers))
        ok = supabase_accepts(request.headers, key)
        return Response(
            '{"ok": true}' if ok else '{"msg": "Invalid JWT"}',
            status=200 if ok else 401,
            content_type="application/json",
        )

    httpserver.expect_request("/functions/v1/worker-pull", method="POST").respond_with_handler(
        answer
    )
    done = run_script(
        "trigger-worker.sh",
        {"JOB_WORKER_SECRET": "w", "SUPABASE_URL": httpserver.url_for("/"), **env},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    headers = {k.lower(): v for k, v in seen[0].items()}
    if key.startswith("sb_secret_"):
        assert headers.get("apikey") == key and "authorization" not in headers
    else:
        assert headers.get("authorization") == f"Bearer {key}"
