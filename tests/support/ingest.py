"""The peers ingest_file talks to, as fixtures: a Storage stand-in and an OpenAI-shaped
embeddings stand-in on pytest-httpserver, and a worker_pull client configured for them.
Registered for every test module by the root conftest (``pytest_plugins``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support.functions import client
from tests.support.queue import Conn
from tests.support.supabase_keys import supabase_accepts

SECRET = "worker-secret-formats"
KEY = "service-role-key-formats"
EMBED_KEY = "embeddings-key-123"
HEADERS = {"x-job-worker-secret": SECRET}


class Storage:
    """GET /storage/v1/object/<bucket>/<path> as Supabase Storage serves it; `failures` are
    answered first, one per request."""

    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.objects: dict[str, bytes] = {}
        self.failures: list[tuple[int, dict[str, str]]] = []
        self.requests = 0
        self.paths: list[str] = []

    def __call__(self, request: Request) -> Response:
        self.requests += 1
        self.paths.append(request.path)
        if not supabase_accepts(request.headers, self.key):
            return _storage_error(400, "403", "Unauthorized")
        if self.failures:
            status, headers = self.failures.pop(0)
            return Response("{}", status=status, headers=headers)
        key = request.path.removeprefix("/storage/v1/object/")
        if key not in self.objects:
            return _storage_error(400, "404", "not_found")
        return Response(self.objects[key], content_type="application/octet-stream")


def _storage_error(status: int, code: str, error: str) -> Response:
    body = {"statusCode": code, "error": error, "message": error}
    return Response(json.dumps(body), status=status, content_type="application/json")


class Embeddings:
    """POST /v1/embeddings, OpenAI's shape: {"model", "input": [...]} -> {"data": [{"index",
    "embedding"}]}. Each vector is [length of the text, index]; `script` answers first."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str]]] = []

    def __call__(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.calls.append({"auth": request.headers.get("Authorization"), "body": body})
        if self.script:
            status, headers = self.script.pop(0)
            return Response(
                json.dumps({"error": {"message": "no"}}),
                status=status,
                headers=headers,
                content_type="application/json",
            )
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), float(i)]}
            for i, t in enumerate(body["input"])
        ]
        return Response(
            json.dumps({"object": "list", "data": data, "model": body["model"]}),
            content_type="application/json",
        )


@pytest.fixture
def storage(httpserver: HTTPServer) -> Storage:
    handler = Storage()
    httpserver.expect_request(
        re.compile("^/storage/v1/object/.*"), method="GET"
    ).respond_with_handler(handler)
    return handler


@pytest.fixture
def embeddings(httpserver: HTTPServer) -> Embeddings:
    handler = Embeddings()
    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(handler)
    return handler


@pytest.fixture
def worker(db: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    def make(**extra: str) -> Any:
        env = {
            "JOB_WORKER_SECRET": SECRET,
            "DATABASE_URL": db,
            "SUPABASE_URL": httpserver.url_for("/").rstrip("/"),
            "SUPABASE_SERVICE_ROLE_KEY": KEY,
            **extra,
        }
        return client("worker_pull", env, monkeypatch)

    return make


def upload(
    conn: Conn, storage: Storage, path: str, content: bytes, content_type: str | None = None
) -> str:
    storage.objects[f"uploads/{path}"] = content
    row = conn.execute(
        "insert into ingest_files (bucket, path, content_type) values ('uploads', %s, %s)"
        " returning id::text",
        (path, content_type),
    ).fetchone()
    return str(row["id"])


def file_row(conn: Conn, file_id: str) -> dict[str, Any]:
    row = conn.execute("select * from ingest_files where id = %s", (file_id,)).fetchone()
    assert row is not None
    return row


def chunks(conn: Conn, file_id: str) -> list[dict[str, Any]]:
    return conn.execute(
        "select chunk_index, content, start_char, embedding::real[] as embedding,"
        " embedding_model from file_chunks"
        " where file_id = %s order by chunk_index",
        (file_id,),
    ).fetchall()


def run(app: Any, max_jobs: int = 10) -> list[dict[str, Any]]:
    answer = app.post("/", json={"max_jobs": max_jobs}, headers=HEADERS)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["jobs"]
