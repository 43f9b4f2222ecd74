"""The Storage key stays on Storage (issue 16, items 1 and 2; issue 18, item 4 and 8).

Uploaders choose object paths (the ``storage.objects`` trigger copies them), so every bucket and
path is hostile until checked. These tests watch every request the worker makes: none may leave
``$SUPABASE_URL/storage/v1/object/<bucket>/``, and no other host may ever receive the key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from pytest_httpserver import HTTPServer

from jobqueue.handlers.ingest.storage_url import UnsafeName, is_under, object_url
from tests.support.ingest import KEY, SECRET, Storage, file_row, run, upload
from tests.support.queue import Conn
from tests.support.supabase_keys import supabase_accepts

ESCAPES = [
    ("uploads", "../../../../rest/v1/jobs"),
    ("uploads", "../private/secret.txt"),
    ("uploads", "a/../../b.txt"),
    ("uploads", "a/./b.txt"),
    ("uploads", "./b.txt"),
    ("uploads", "a//b.txt"),
    ("uploads", "/etc/passwd"),
    ("uploads", "folder/"),
    ("uploads", ""),
    ("uploads", "line\nbreak.txt"),
    ("uploads", "tab\tname.txt"),
    ("uploads", "del\x7f.txt"),
    ("..", "secret.txt"),
    (".", "secret.txt"),
    ("", "secret.txt"),
    ("a/b", "secret.txt"),
    ("up\x01loads", "secret.txt"),
]


def _insert(conn: Conn, bucket: str, path: str) -> str:
    row = conn.execute(
        "insert into ingest_files (bucket, path) values (%s, %s) returning id::text",
        (bucket, path),
    ).fetchone()
    assert row is not None
    return str(row["id"])


@pytest.mark.parametrize(("bucket", "path"), ESCAPES)
def test_a_name_storage_could_not_hold_fails_at_once_with_no_request_sent(
    worker: Any, conn: Conn, storage: Storage, httpserver: HTTPServer, bucket: str, path: str
) -> None:
    storage.objects["private/secret.txt"] = b"another bucket's secret"
    file_id = _insert(conn, bucket, path)
    [reported] = run(worker())
    assert reported["status"] == "failed" and reported["attempts"] == 1, reported
    row = file_row(conn, file_id)
    assert row["status"] == "failed" and "cannot name a Storage object" in row["error"]
    assert row["text_content"] is None
    assert storage.requests == 0 and len(httpserver.log) == 0


@pytest.mark.parametrize(
    "path", ["a b/c?d#e%20f.txt", "dir/ünï cödé.md", "x\\..\\y.txt", "..a/b..c"]
)
def test_odd_but_valid_names_are_fetched_from_their_own_object(
    worker: Any, conn: Conn, storage: Storage, path: str
) -> None:
    file_id = upload(conn, storage, path, b"found at the right place")
    [reported] = run(worker())
    assert reported["status"] == "done", reported["error"]
    assert file_row(conn, file_id)["text_content"] == "found at the right place"
    assert storage.paths == [f"/storage/v1/object/uploads/{path}"]


@pytest.mark.parametrize(("bucket", "path"), [*ESCAPES, ("uploads", "a\x00b.txt")])
def test_no_url_the_worker_builds_leaves_the_bucket(bucket: str, path: str) -> None:
    with pytest.raises(UnsafeName):
        object_url("https://ref.supabase.co", bucket, path)


def test_every_built_url_stays_under_its_bucket_for_arbitrary_names() -> None:
    import httpx
    from hypothesis import given, settings
    from hypothesis import strategies as st

    base = "https://ref.supabase.co"

    @settings(max_examples=2000, deadline=None)
    @given(st.text(max_size=12), st.text(max_size=40))
    def check(bucket: str, path: str) -> None:
        try:
            url = object_url(base, bucket, path)
        except UnsafeName:
            return
        # What httpx would actually request, after its own normalisation.
        sent = httpx.Request("GET", url).url
        assert sent.host == "ref.supabase.co"
        assert sent.raw_path.decode().startswith(f"/storage/v1/object/{quote(bucket, safe='')}/")
        assert is_under(str(sent), base, f"/storage/v1/object/{quote(bucket, safe='')}/")

    check()


def test_a_redirect_to_another_host_is_not_followed_and_the_key_never_leaves(
    worker: Any, conn: Conn, httpserver: HTTPServer
) -> None:
    elsewhere = HTTPServer(host="127.0.0.1", port=0)
    elsewhere.expect_request("/steal").respond_with_data("stolen page", status=200)
    elsewhere.start()
    try:
        httpserver.expect_request("/storage/v1/object/uploads/doc.txt").respond_with_data(
            "", status=302, headers={"Location": elsewhere.url_for("/steal")}
        )
        file_id = _insert(conn, "uploads", "doc.txt")
        [reported] = run(worker())
        assert reported["status"] == "failed" and reported["attempts"] == 1
        assert "not followed" in file_row(conn, file_id)["error"]
        assert len(elsewhere.log) == 0
    finally:
        elsewhere.clear()
        elsewhere.stop()


@pytest.mark.parametrize(
    "location",
    [
        "/storage/v1/object/other-bucket/doc.txt",
        "/rest/v1/jobs",
        "/storage/v1/object/uploads/../../../rest/v1/jobs",
        "/storage/v1/object/uploads/x?token=1",
        "//evil.example/storage/v1/object/uploads/doc.txt",
    ],
)
def test_a_redirect_off_the_buckets_prefix_is_refused(
    worker: Any, conn: Conn, httpserver: HTTPServer, location: str
) -> None:
    httpserver.expect_request("/storage/v1/object/uploads/doc.txt").respond_with_data(
        "", status=307, headers={"Location": location}
    )
    file_id = _insert(conn, "uploads", "doc.txt")
    [reported] = run(worker())
    assert reported["status"] == "failed"
    assert "not followed" in file_row(conn, file_id)["error"]
    assert [r.path for r, _ in httpserver.log] == ["/storage/v1/object/uploads/doc.txt"]


def test_a_redirect_inside_the_bucket_is_followed(
    worker: Any, conn: Conn, storage: Storage, httpserver: HTTPServer
) -> None:
    storage.objects["uploads/new/doc.txt"] = b"moved here"
    httpserver.expect_ordered_request("/storage/v1/object/uploads/old/doc.txt").respond_with_data(
        "", status=301, headers={"Location": "/storage/v1/object/uploads/new/doc.txt"}
    )
    file_id = _insert(conn, "uploads", "old/doc.txt")
    [reported] = run(worker())
    assert reported["status"] == "done", reported["error"]
    assert file_row(conn, file_id)["text_content"] == "moved here"


NEW_KEY = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SUPABASE_SECRET_KEY": NEW_KEY}, NEW_KEY),
        ({"SUPABASE_SERVICE_ROLE_KEY": KEY}, KEY),
        # With both, the new key is used (the legacy one is being retired).
        ({"SUPABASE_SECRET_KEY": NEW_KEY, "SUPABASE_SERVICE_ROLE_KEY": "retired"}, NEW_KEY),
    ],
)
def test_each_kind_of_key_is_sent_as_supabase_accepts_it(
    db: str,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    conn: Conn,
    env: dict[str, str],
    key: str,
) -> None:
    from tests.support.functions import client

    storage = Storage(key)
    httpserver.expect_request("/storage/v1/object/uploads/k.txt").respond_with_handler(storage)
    storage.objects["uploads/k.txt"] = b"keyed"
    file_id = _insert(conn, "uploads", "k.txt")
    app = client(
        "worker_pull",
        {
            "JOB_WORKER_SECRET": SECRET,
            "DATABASE_URL": db,
            "SUPABASE_URL": httpserver.url_for("/").rstrip("/"),
            **env,
        },
        monkeypatch,
    )
    [reported] = run(app)
    assert reported["status"] == "done", reported["error"]
    assert file_row(conn, file_id)["text_content"] == "keyed"
    sent = httpserver.log[0][0].headers
    assert sent.get("apikey") == key
    if key.startswith("sb_secret_"):
        assert "Authorization" not in sent


def test_the_stand_in_speaks_supabases_key_rules() -> None:
    assert supabase_accepts({"apikey": NEW_KEY}, NEW_KEY)
    assert not supabase_accepts({"Authorization": f"Bearer {NEW_KEY}"}, NEW_KEY)
    assert not supabase_accepts({"apikey": NEW_KEY, "Authorization": f"Bearer {NEW_KEY}"}, NEW_KEY)
    assert supabase_accepts({"apikey": KEY}, KEY)
    assert supabase_accepts({"Authorization": f"Bearer {KEY}"}, KEY)
    assert supabase_accepts({"apikey": KEY, "Authorization": f"Bearer {KEY}"}, KEY)
    assert not supabase_accepts({"apikey": "wrong"}, KEY)


@pytest.mark.parametrize("missing", ["SUPABASE_URL", "key"])
def test_missing_storage_configuration_fails_the_job_at_once_naming_the_variable(
    db: str, monkeypatch: pytest.MonkeyPatch, conn: Conn, missing: str
) -> None:
    from tests.support.functions import client

    env = {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}
    if missing == "SUPABASE_URL":
        env["SUPABASE_SERVICE_ROLE_KEY"] = KEY
    else:
        env["SUPABASE_URL"] = "http://127.0.0.1:9"
    file_id = _insert(conn, "uploads", "x.txt")
    [reported] = run(client("worker_pull", env, monkeypatch))
    assert reported["status"] == "failed" and reported["attempts"] == 1
    error = file_row(conn, file_id)["error"]
    assert ("SUPABASE_URL" if missing == "SUPABASE_URL" else "SUPABASE_SECRET_KEY") in error


def test_the_health_check_says_which_handler_lacks_its_configuration(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.functions import client

    bare = client("worker_pull", {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}, monkeypatch)
    handlers = bare.get("/").get_json()["handlers"]
    assert handlers["echo"] == {"configured": True}
    assert handlers["ingest_file"]["configured"] is False
    assert "SUPABASE_URL" in handlers["ingest_file"]["problem"]
    full = client(
        "worker_pull",
        {
            "JOB_WORKER_SECRET": SECRET,
            "DATABASE_URL": db,
            "SUPABASE_URL": "http://127.0.0.1:9",
            "SUPABASE_SECRET_KEY": NEW_KEY,
        },
        monkeypatch,
    )
    assert full.get("/").get_json()["handlers"]["ingest_file"] == {"configured": True}
    assert NEW_KEY not in str(full.get("/").get_json())
