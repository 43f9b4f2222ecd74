"""The ingest_file job against a stand-in for Supabase Storage speaking its wire format."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support.functions import client
from tests.support.queue import Conn, job

SECRET = "worker-secret-ingest"
KEY = "service-role-key-ingest"


@pytest.fixture
def storage(httpserver: HTTPServer) -> dict[str, bytes]:
    """Objects by "bucket/path"; GET /storage/v1/object/<bucket>/<path> as Storage serves it."""
    objects: dict[str, bytes] = {}

    def handle(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return Response(
                json.dumps(
                    {"statusCode": "403", "error": "Unauthorized", "message": "invalid signature"}
                ),
                status=400,
            )
        key = request.path.removeprefix("/storage/v1/object/")
        if key not in objects:
            return Response(
                json.dumps(
                    {"statusCode": "404", "error": "not_found", "message": "Object not found"}
                ),
                status=400,
                content_type="application/json",
            )
        return Response(objects[key], content_type="application/octet-stream")

    httpserver.expect_request(
        re.compile("^/storage/v1/object/.*"), method="GET"
    ).respond_with_handler(handle)
    return objects


@pytest.fixture
def app(db: str, httpserver: HTTPServer, monkeypatch: Any) -> Any:
    env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": db,
        "SUPABASE_URL": httpserver.url_for("").rstrip("/"),
        "SUPABASE_SERVICE_ROLE_KEY": KEY,
    }
    return client("worker_pull", env, monkeypatch)


def upload(conn: Conn, bucket: str, path: str) -> str:
    row = conn.execute(
        "insert into ingest_files (bucket, path) values (%s, %s) returning id", (bucket, path)
    ).fetchone()
    return str(row["id"])


def test_uploaded_text_file_becomes_text_and_metadata(
    app: Any, conn: Conn, storage: dict[str, bytes]
) -> None:
    storage["docs/notes/hello.txt"] = "Hello, wörld\nsecond line\n".encode()
    file_id = upload(conn, "docs", "notes/hello.txt")
    [reported] = app.post("/", json={}, headers={"x-job-worker-secret": SECRET}).get_json()["jobs"]
    assert reported["status"] == "done", reported["error"]
    row = conn.execute("select * from ingest_files where id = %s", (file_id,)).fetchone()
    assert row["status"] == "processed" and row["text_content"] == "Hello, wörld\nsecond line\n"
    meta = row["metadata"]
    assert (meta["size_bytes"], meta["characters"], meta["words"]) == (26, 25, 4)
    assert meta["detected_type"] == "text/plain" and meta["chunks"] == 1
    assert row["content_type"] == "text/plain" and row["processed_at"] is not None
    assert job(conn, reported["id"])["output"]["characters"] == 25


def test_missing_object_fails_at_once_and_marks_the_file_failed(
    app: Any, conn: Conn, storage: dict[str, bytes]
) -> None:
    file_id = upload(conn, "docs", "nowhere.pdf")
    [reported] = app.post("/", json={}, headers={"x-job-worker-secret": SECRET}).get_json()["jobs"]
    assert reported["status"] == "failed" and reported["attempts"] == 1
    assert "does not exist" in reported["error"]
    row = conn.execute(
        "select status, error from ingest_files where id = %s", (file_id,)
    ).fetchone()
    assert row["status"] == "failed" and "does not exist" in row["error"]


@pytest.mark.parametrize("input", [{}, {"file_id": "not-a-uuid"}, {"file_id": 7}, []])
def test_bad_input_fails_at_once(app: Any, conn: Conn, input: Any) -> None:
    job_id = conn.execute(
        "insert into jobs (type, input) values ('ingest_file', %s) returning id", (Jsonb(input),)
    ).fetchone()["id"]
    [reported] = app.post("/", json={}, headers={"x-job-worker-secret": SECRET}).get_json()["jobs"]
    assert reported["id"] == job_id and reported["status"] == "failed"
    assert "file_id" in reported["error"] and reported["attempts"] == 1


def test_a_file_id_with_no_row_fails_at_once(app: Any, conn: Conn) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    conn.execute(
        "insert into jobs (type, input) values ('ingest_file', %s)", (Jsonb({"file_id": missing}),)
    )
    [reported] = app.post("/", json={}, headers={"x-job-worker-secret": SECRET}).get_json()["jobs"]
    assert reported["status"] == "failed" and missing in reported["error"]
