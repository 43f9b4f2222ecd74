"""ingest_file for real (issue 13): real files of each format through a Storage stand-in and an
embeddings stand-in that speak the real wire formats, on the real test database."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support.files import PNG, docx, pdf
from tests.support.ingest import (
    EMBED_KEY,
    Embeddings,
    Storage,
    chunks,
    file_row,
    run,
    upload,
)
from tests.support.queue import Conn, job, make_runnable

LATIN = "Le café crème de la façade est naïve, dit-il à l'élève. Prix: 12 € pour un goûter.\n" * 3


@pytest.mark.parametrize(
    ("path", "content", "declared", "detected", "expected_text", "extra"),
    [
        ("latin.txt", LATIN.encode("cp1252"), "text/plain", "text/plain", "café crème", {}),
        ("readme.md", b"# Title\n\nSome *markdown* text.\n", None, "text/markdown", "# Title", {}),
        ("data.csv", b"a,b\n1,2\n3,4\n", None, "text/csv", "3,4", {}),
        ("doc.json", b'{"k": [1, 2, 3]}', None, "application/json", '"k"', {}),
        (
            "page.html",
            b"<!doctype html><html><head><title>T</title><style>x{}</style></head>"
            b"<body><h1>Heading</h1><script>var no;</script><p>Para &amp; more</p></body></html>",
            "text/html",
            "text/html",
            "Para & more",
            {},
        ),
        (
            "report.pdf",
            pdf(["First page text", "Second page text"]),
            "application/pdf",
            "application/pdf",
            "Second page text",
            {"pages": 2},
        ),
        (
            "letter.docx",
            docx(["Dear reader,", "Regards."]),
            None,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "Dear reader,\nRegards.",
            {},
        ),
        # The uploader's claim is wrong; the bytes decide.
        (
            "fake.txt",
            pdf(["Really a PDF"]),
            "text/plain",
            "application/pdf",
            "Really a PDF",
            {"pages": 1},
        ),
    ],
)
def test_each_format_becomes_text_metadata_and_chunks(
    worker: Any,
    conn: Conn,
    storage: Storage,
    path: str,
    content: bytes,
    declared: str | None,
    detected: str,
    expected_text: str,
    extra: dict[str, Any],
) -> None:
    file_id = upload(conn, storage, path, content, declared)
    [reported] = run(worker())
    assert reported["status"] == "done", reported["error"]
    row = file_row(conn, file_id)
    meta = row["metadata"]
    assert row["status"] == "processed" and expected_text in row["text_content"]
    assert "<" not in row["text_content"] or detected != "text/html"
    assert "var no" not in row["text_content"]
    # One name per idea: content_type is what the uploader declared, kept as it was;
    # detected_type is what the bytes are.
    assert meta["detected_type"] == detected == row["detected_type"]
    assert row["content_type"] == declared
    assert meta["size_bytes"] == len(content) and len(meta["sha256"]) == 64
    assert meta["characters"] == len(row["text_content"]) and meta["words"] > 0
    assert meta["chunks"] == len(chunks(conn, file_id)) >= 1
    for key, value in extra.items():
        assert meta[key] == value


def test_a_corrupt_pdf_fails_for_good_with_a_reason(
    worker: Any, conn: Conn, storage: Storage
) -> None:
    broken = pdf(["fine"])[:60] + b"garbage" * 20
    file_id = upload(conn, storage, "broken.pdf", broken)
    [reported] = run(worker())
    assert reported["status"] == "failed" and reported["attempts"] == 1
    row = file_row(conn, file_id)
    assert row["status"] == "failed" and "not a readable PDF" in row["error"]
    assert "upload it again" in row["error"]


def test_an_oversized_file_fails_for_good_naming_the_limit(
    worker: Any, conn: Conn, storage: Storage
) -> None:
    file_id = upload(conn, storage, "big.txt", b"x" * 5000)
    [reported] = run(worker(INGEST_MAX_BYTES="1000"))
    assert reported["status"] == "failed"
    assert "INGEST_MAX_BYTES" in file_row(conn, file_id)["error"]


def test_an_unsupported_binary_is_processed_with_metadata_only(
    worker: Any, conn: Conn, storage: Storage
) -> None:
    file_id = upload(conn, storage, "photo.png", PNG, "image/png")
    [reported] = run(worker())
    assert reported["status"] == "done"
    row = file_row(conn, file_id)
    assert row["metadata"]["detected_type"] == "image/png"
    assert "metadata only" in row["metadata"]["unsupported"]
    assert row["text_content"] is None and chunks(conn, file_id) == []


@pytest.mark.parametrize("status", [500, 503, 429])
def test_storage_errors_and_throttling_are_retried(
    worker: Any, conn: Conn, storage: Storage, status: int
) -> None:
    file_id = upload(conn, storage, "later.txt", b"eventually")
    storage.failures.append((status, {"Retry-After": "7"} if status == 429 else {}))
    app = worker()
    [first] = run(app)
    assert first["status"] == "queued" and str(status) in first["error"]
    wait = conn.execute(
        "select extract(epoch from run_at - now()) as s from jobs where id = %s", (first["id"],)
    ).fetchone()["s"]
    # 429: the peer's Retry-After; 5xx: the queue's own backoff (10 s, jittered 0.5x-1.5x).
    assert 0 < float(wait) <= (7 if status == 429 else 15) + 1
    make_runnable(conn, first["id"])
    [second] = run(app)
    assert second["status"] == "done" and file_row(conn, file_id)["status"] == "processed"


@pytest.mark.parametrize(("cap", "expected"), [(None, 3600), ("60", 60)])
def test_a_peers_absurd_retry_after_is_capped(
    worker: Any, conn: Conn, storage: Storage, cap: str | None, expected: int
) -> None:
    upload(conn, storage, "later.txt", b"eventually")
    storage.failures.append((429, {"Retry-After": "1e12"}))
    app = worker(**({"JOB_MAX_RETRY_DELAY_SECONDS": cap} if cap else {}))
    [first] = run(app)
    assert first["status"] == "queued"
    wait = conn.execute(
        "select extract(epoch from run_at - now()) as s from jobs where id = %s", (first["id"],)
    ).fetchone()["s"]
    assert expected - 5 < float(wait) <= expected


def test_chunks_overlap_and_a_rerun_replaces_them(
    worker: Any, conn: Conn, storage: Storage
) -> None:
    text = " ".join(f"word{i:05d}" for i in range(5000))
    file_id = upload(conn, storage, "long.txt", text.encode())
    app = worker(INGEST_CHUNK_CHARS="200", INGEST_CHUNK_OVERLAP="50")
    run(app)
    first = chunks(conn, file_id)
    assert len(first) > 200, "more than one batch of chunks"
    assert all(len(c["content"]) <= 200 for c in first)
    for before, after in itertools.pairwise(first):
        overlap = before["start_char"] + len(before["content"]) - after["start_char"]
        assert 0 < overlap <= 50 + 40
        assert (
            text[after["start_char"] : after["start_char"] + len(after["content"])]
            == after["content"]
        )
    # The job run again (a re-run): the same chunks, not twice as many.
    conn.execute(
        "insert into jobs (type, input) values ('ingest_file', %s)", (Jsonb({"file_id": file_id}),)
    )
    run(app)
    assert [c["content"] for c in chunks(conn, file_id)] == [c["content"] for c in first]


def test_embeddings_are_stored_and_a_retry_mid_file_leaves_no_duplicate(
    worker: Any, conn: Conn, storage: Storage, embeddings: Embeddings, httpserver: HTTPServer
) -> None:
    text = " ".join(f"w{i:04d}" for i in range(6000))
    file_id = upload(conn, storage, "embed.txt", text.encode())
    app = worker(
        INGEST_CHUNK_CHARS="100",
        INGEST_CHUNK_OVERLAP="20",
        EMBEDDINGS_BATCH="64",
        EMBEDDINGS_URL=httpserver.url_for("/v1"),
        EMBEDDINGS_MODEL="text-embed-test",
        EMBEDDINGS_API_KEY=EMBED_KEY,
    )
    # The 5th request fails: the first batch of 200 chunks (4 requests) is already written.
    embeddings.script = [(200, {})] * 0
    calls_before_failure = 4
    original = embeddings.__call__

    def flaky(request: Request) -> Response:
        if len(embeddings.calls) == calls_before_failure and not getattr(flaky, "done", False):
            flaky.done = True  # type: ignore[attr-defined]
            embeddings.calls.append({"auth": request.headers.get("Authorization"), "body": {}})
            return Response("{}", status=503)
        return original(request)

    httpserver.clear()
    httpserver.expect_request(
        re.compile("^/storage/v1/object/.*"), method="GET"
    ).respond_with_handler(storage)
    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(flaky)
    [first] = run(app)
    assert first["status"] == "queued" and "503" in first["error"]
    assert len(chunks(conn, file_id)) == 200, "the first batch was written before the failure"
    make_runnable(conn, first["id"])
    [second] = run(app)
    assert second["status"] == "done", second["error"]
    stored = chunks(conn, file_id)
    assert [c["chunk_index"] for c in stored] == list(range(len(stored)))
    # Each write batch (200 chunks) is embedded in requests of 64.
    wrong = [
        (c["chunk_index"], c["embedding"])
        for c in stored
        if c["embedding"] != [float(len(c["content"])), float(c["chunk_index"] % 200 % 64)]
    ]
    assert wrong == []
    call = embeddings.calls[0]
    assert call["auth"] == f"Bearer {EMBED_KEY}" and call["body"]["model"] == "text-embed-test"
    assert len(call["body"]["input"]) == 64
    assert file_row(conn, file_id)["metadata"]["embedded_chunks"] == len(stored)


@pytest.mark.parametrize(("status", "outcome"), [(400, "failed"), (401, "failed"), (503, "queued")])
def test_embedding_errors_fail_or_retry_by_status(
    worker: Any,
    conn: Conn,
    storage: Storage,
    embeddings: Embeddings,
    httpserver: HTTPServer,
    status: int,
    outcome: str,
) -> None:
    upload(conn, storage, "e.txt", b"some text to embed")
    embeddings.script = [(status, {"Retry-After": "3"})]
    app = worker(EMBEDDINGS_URL=httpserver.url_for("/v1"), EMBEDDINGS_MODEL="m")
    [reported] = run(app)
    assert reported["status"] == outcome and str(status) in reported["error"]


@pytest.mark.parametrize(
    ("headers", "paused_for"),
    [
        ({"Retry-After": "3"}, 3),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}, 360),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m30s"}, 90),
        ({}, 60),
    ],
)
def test_a_429_pauses_the_key_for_every_instance_and_snoozes_the_job(
    worker: Any,
    conn: Conn,
    storage: Storage,
    embeddings: Embeddings,
    httpserver: HTTPServer,
    headers: dict[str, str],
    paused_for: int,
) -> None:
    upload(conn, storage, "e.txt", b"some text to embed")
    embeddings.script = [(429, headers)]
    app = worker(EMBEDDINGS_URL=httpserver.url_for("/v1"), EMBEDDINGS_MODEL="m")
    [reported] = run(app)
    assert reported["status"] == "queued" and reported["snoozed"] is True
    row = job(conn, reported["id"])
    assert (row["attempts"], row["max_attempts"]) == (1, 6), "a rate limit costs no attempt"
    paused = conn.execute(
        "select extract(epoch from paused_until - now()) as s from rate_limits"
        " where key = 'embeddings:m'"
    ).fetchone()["s"]
    assert paused_for - 2 < float(paused) <= paused_for
    # Every instance's next acquire for the key waits for the pause's end.
    other = conn.execute("select acquire_rate('embeddings:m') > now() as waits").fetchone()
    assert other["waits"] is True


def test_a_reupload_with_the_same_bytes_reuses_the_work(
    worker: Any, conn: Conn, storage: Storage, embeddings: Embeddings, httpserver: HTTPServer
) -> None:
    content = ("the same report " * 200).encode()
    first = upload(conn, storage, "v1/report.txt", content)
    app = worker(
        INGEST_CHUNK_CHARS="300",
        INGEST_CHUNK_OVERLAP="30",
        EMBEDDINGS_URL=httpserver.url_for("/v1"),
        EMBEDDINGS_MODEL="m",
    )
    run(app)
    calls = len(embeddings.calls)
    second = upload(conn, storage, "v2/report-copy.txt", content, "application/octet-stream")
    [reported] = run(app)
    assert reported["status"] == "done"
    copy = file_row(conn, second)
    assert (copy["content_type"], copy["detected_type"]) == (
        "application/octet-stream",
        "text/plain",
    )
    assert len(embeddings.calls) == calls, "no embedding redone"
    assert job(conn, reported["id"])["output"]["duplicate_of"] == first
    assert file_row(conn, second)["metadata"]["duplicate_of"] == first
    assert [c["content"] for c in chunks(conn, second)] == [
        c["content"] for c in chunks(conn, first)
    ]
    assert file_row(conn, second)["text_content"] == file_row(conn, first)["text_content"]


SUPABASE_STORAGE_OBJECTS = """
create schema if not exists storage;
create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text,
  name text,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  owner_id text,
  user_metadata jsonb
);
"""


def test_an_upload_to_storage_is_all_a_user_does(conn: Conn) -> None:
    """Supabase's storage.objects (a stand-in with its columns): an insert in a configured
    bucket makes the ingest_files row, and so the job; other buckets are left alone."""
    conn.execute(SUPABASE_STORAGE_OBJECTS)
    assert (
        "now queue" in conn.execute("select install_ingest_storage_trigger() as m").fetchone()["m"]
    )
    conn.execute(
        "insert into storage.objects (bucket_id, name, metadata) values"
        " ('uploads', 'team/q3.pdf', '{\"mimetype\": \"application/pdf\", \"size\": 1234}'),"
        " ('avatars', 'me.png', '{\"mimetype\": \"image/png\", \"size\": 10}')"
    )
    files = conn.execute(
        "select bucket, path, content_type, size_bytes from ingest_files"
    ).fetchall()
    assert files == [
        {
            "bucket": "uploads",
            "path": "team/q3.pdf",
            "content_type": "application/pdf",
            "size_bytes": 1234,
        }
    ]
    queued = conn.execute("select count(*) as n from jobs where type = 'ingest_file'").fetchone()
    assert queued == {"n": 1}


def test_a_file_longer_than_its_lease_renews_it_as_it_goes(
    worker: Any, conn: Conn, storage: Storage, httpserver: HTTPServer
) -> None:
    """A 2 s lease, about 6 s of embedding: the lease is renewed batch by batch, so the job
    is done in one attempt and nobody else could take it meanwhile."""
    import time as clock

    text = " ".join(f"w{i:05d}" for i in range(15000))
    file_id = upload(conn, storage, "slow.txt", text.encode())

    def slow(request: Request) -> Response:
        clock.sleep(0.3)
        body = json.loads(request.get_data())
        data = [{"index": i, "embedding": [1.0]} for i, _ in enumerate(body["input"])]
        return Response(json.dumps({"data": data}), content_type="application/json")

    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(slow)
    app = worker(
        JOB_LEASE_SECONDS="2",
        INGEST_CHUNK_CHARS="100",
        INGEST_CHUNK_OVERLAP="10",
        EMBEDDINGS_URL=httpserver.url_for("/v1"),
        EMBEDDINGS_MODEL="m",
    )
    started = clock.monotonic()
    [reported] = run(app)
    assert reported["status"] == "done", reported["error"]
    assert clock.monotonic() - started > 3, "the work took longer than a lease"
    assert reported["attempts"] == 1 and len(chunks(conn, file_id)) > 200


def test_a_missing_object_fails_at_once_and_marks_the_file_failed(
    worker: Any, conn: Conn, storage: Storage
) -> None:
    file_id = conn.execute(
        "insert into ingest_files (bucket, path) values ('uploads', 'nowhere.pdf')"
        " returning id::text"
    ).fetchone()["id"]
    [reported] = run(worker())
    assert reported["status"] == "failed" and reported["attempts"] == 1
    assert "does not exist" in reported["error"]
    row = file_row(conn, file_id)
    assert row["status"] == "failed" and "does not exist" in row["error"]


@pytest.mark.parametrize("input", [{}, {"file_id": "not-a-uuid"}, {"file_id": 7}, []])
def test_input_that_names_no_file_fails_at_once(worker: Any, conn: Conn, input: Any) -> None:
    job_id = conn.execute(
        "insert into jobs (type, input) values ('ingest_file', %s) returning id", (Jsonb(input),)
    ).fetchone()["id"]
    [reported] = run(worker())
    assert reported["id"] == job_id and reported["status"] == "failed"
    assert "file_id" in reported["error"] and reported["attempts"] == 1


def test_a_file_id_with_no_row_fails_at_once(worker: Any, conn: Conn) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    conn.execute(
        "insert into jobs (type, input) values ('ingest_file', %s)", (Jsonb({"file_id": missing}),)
    )
    [reported] = run(worker())
    assert reported["status"] == "failed" and missing in reported["error"]
