"""Search over the chunks with the real pgvector (issue 20; the README's "Search"), the real[]
fallback where pgvector is off, and progress a client can watch."""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from jobqueue.tools.migrate import apply_migrations
from tests.support import pg, postgrest
from tests.support.ingest import Embeddings, Storage, file_row, run, upload
from tests.support.queue import Conn

FILES = {
    "uploads/docs/east.txt": [1.0, 0.0, 0.0],
    "uploads/docs/north.txt": [0.0, 1.0, 0.0],
    "uploads/docs/northeast.txt": [0.7, 0.7, 0.0],
    "archive/old/up.txt": [0.0, 0.0, 1.0],
}


def _file(conn: Conn, key: str) -> str:
    bucket, path = key.split("/", 1)
    row = conn.execute(
        "insert into ingest_files (bucket, path) values (%s, %s) returning id::text",
        (bucket, path),
    ).fetchone()
    assert row is not None
    return str(row["id"])


def _embed(conn: Conn, file_id: str, text: str, vector: list[float], model: str) -> None:
    chunk = {"index": 0, "start": 0, "content": text, "embedding": vector, "model": model}
    conn.execute("select add_file_chunks(%s, %s::jsonb)", (file_id, json.dumps([chunk])))


def _search(conn: Conn, vector: list[float], *args: Any) -> list[dict[str, Any]]:
    placeholders = ", ".join(["%s"] * len(args))
    return conn.execute(
        f"select * from match_file_chunks(%s::text::{_type(conn)}"
        + (f", {placeholders}" if args else "")
        + ")",
        (
            json.dumps(vector)
            if _type(conn) != "real[]"
            else "{" + ",".join(map(str, vector)) + "}",
            *args,
        ),
    ).fetchall()


def _type(conn: Conn) -> str:
    return str(conn.execute("select chunk_embedding_type() as t").fetchone()["t"])


@pytest.fixture
def indexed(conn: Conn) -> dict[str, str]:
    ids = {}
    for key, vector in FILES.items():
        ids[key] = _file(conn, key)
        _embed(conn, ids[key], key.rsplit("/", 1)[1], vector, "model-a")
    return ids


def test_the_real_pgvector_is_used(conn: Conn) -> None:
    assert conn.execute(
        "select extversion from pg_extension where extname = 'vector'"
    ).fetchone() == {"extversion": "0.8.0"}
    assert _type(conn) == "extensions.vector"
    column = conn.execute(
        "select format_type(atttypid, atttypmod) as t from pg_attribute"
        " where attrelid = 'file_chunks'::regclass and attname = 'embedding'"
    ).fetchone()
    assert column == {"t": "extensions.vector"}


def test_nearest_chunks_come_first_with_cosine_similarity(
    conn: Conn, indexed: dict[str, str]
) -> None:
    found = _search(conn, [1.0, 0.1, 0.0], 3)
    assert [r["content"] for r in found] == ["east.txt", "northeast.txt", "north.txt"]
    expected = (1.0 * 1.0 + 0.1 * 0) / math.sqrt(1.01)
    assert found[0]["similarity"] == pytest.approx(expected, abs=1e-5)
    assert str(found[0]["file_id"]) == indexed["uploads/docs/east.txt"]
    assert found[0]["chunk_index"] == 0


def test_filters_restrict_the_files_searched(conn: Conn, indexed: dict[str, str]) -> None:
    assert [
        r["content"] for r in _search(conn, [0.0, 0.1, 1.0], 10, None, '{"bucket": "uploads"}')
    ] == ["north.txt", "northeast.txt", "east.txt"]
    assert [
        r["content"] for r in _search(conn, [1, 0, 0], 10, None, '{"path_prefix": "old/"}')
    ] == ["up.txt"]


def test_a_model_change_keeps_old_vectors_apart_and_searchable(
    conn: Conn, indexed: dict[str, str]
) -> None:
    other = _file(conn, "uploads/docs/new.txt")
    _embed(conn, other, "new model's chunk", [0.1, 0.2, 0.3, 0.4], "model-b")
    # The latest model is the default; the old one stays searchable by name.
    assert [r["content"] for r in _search(conn, [0.1, 0.2, 0.3, 0.4], 5)] == ["new model's chunk"]
    assert len(_search(conn, [1.0, 0.0, 0.0], 10, "model-a")) == 4
    indexes = {
        r["indexname"]
        for r in conn.execute(
            "select indexname from pg_indexes where tablename = 'file_chunks'"
            " and indexdef like '%hnsw%'"
        ).fetchall()
    }
    assert len(indexes) == 2  # one per (model, dimension)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.0, 0.0], 10, "model-a"), "has 2 dimensions; model model-a has 3"),
        (([1.0, 0.0, 0.0], 0), "p_match_count must be from 1 to 1000"),
        (([1.0, 0.0, 0.0], 10000), "p_match_count must be from 1 to 1000"),
        (([1.0, 0.0, 0.0], 10, "no-such-model"), "no chunk is embedded with model"),
        (([1.0, 0.0, 0.0], 10, None, '{"bucket": 3}'), "must be strings"),
        (([1.0, 0.0, 0.0], 10, None, '["uploads"]'), "must be a JSON object"),
        (([1.0, 0.0, 0.0], 10, None, '{"folder": "x"}'), "unknown keys (folder)"),
    ],
)
def test_bad_input_is_a_clear_error(
    conn: Conn, indexed: dict[str, str], args: tuple[Any, ...], message: str
) -> None:
    vector, *rest = args
    with pytest.raises(psycopg.errors.RaiseException, match=re_escape(message)):
        _search(conn, vector, *rest)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_the_search_uses_its_hnsw_index_on_a_large_table(conn: Conn) -> None:
    """20,000 chunks of 32 dimensions: the plan of match_file_chunks' own statement (logged
    by auto_explain from inside the function) walks the model's HNSW index."""
    rng = random.Random(7)
    files = [_file(conn, f"uploads/big/{n}.txt") for n in range(20)]
    rows = [
        {
            "index": i,
            "start": 0,
            "content": f"c{i}",
            "model": "big",
            "embedding": [rng.random() for _ in range(32)],
        }
        for i in range(1000)
    ]
    for file_id in files:
        conn.execute("select add_file_chunks(%s, %s::jsonb)", (file_id, json.dumps(rows)))
    conn.execute("analyze file_chunks")
    plans: list[str] = []
    conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    conn.execute("load 'auto_explain'")
    conn.execute("set auto_explain.log_min_duration = 0")
    conn.execute("set auto_explain.log_nested_statements = on")
    conn.execute("set client_min_messages = log")
    try:
        found = _search(conn, rows[5]["embedding"], 10, "big")
    finally:
        conn.execute("set client_min_messages = notice")
    assert found[0]["content"] == "c5" and len(found) == 10
    search_plans = [p for p in plans if "file_chunks c" in p and "<=>" in p]
    assert search_plans and all("Index Scan using file_chunks_hnsw_" in p for p in search_plans)


def test_search_through_postgrests_rpc(
    db: str, conn: Conn, indexed: dict[str, str], httpserver: HTTPServer
) -> None:
    """As supabase-js and supabase-py call it: POST /rest/v1/rpc/match_file_chunks with the
    query vector as a JSON array."""
    import httpx

    url = postgrest.install(httpserver, db, "service-key")
    answer = httpx.post(
        f"{url}/rest/v1/rpc/match_file_chunks",
        json={"p_query_embedding": [1.0, 0.1, 0.0], "p_match_count": 2},
        headers={"apikey": "service-key", "Authorization": "Bearer service-key"},
    )
    assert answer.status_code == 200, answer.text
    assert [r["content"] for r in answer.json()] == ["east.txt", "northeast.txt"]
    bad = httpx.post(
        f"{url}/rest/v1/rpc/match_file_chunks",
        json={"p_query_embedding": [1.0], "p_match_count": 2},
        headers={"apikey": "service-key", "Authorization": "Bearer service-key"},
    )
    assert bad.status_code == 400 and "dimensions" in bad.json()["message"]


def test_api_roles_cannot_search_unless_granted(conn: Conn, indexed: dict[str, str]) -> None:
    for role in ("anon", "authenticated"):
        row = conn.execute(
            "select has_function_privilege(%s, 'match_file_chunks(extensions.vector, integer,"
            " text, jsonb)', 'execute') as can",
            (role,),
        ).fetchone()
        assert row == {"can": False}


def test_without_pgvector_search_works_on_real_arrays(pg_server: str) -> None:
    """An operator who turned pgvector off (jobqueue.pgvector = off): real[] and exact search."""
    name = pg.unique_name("jobqueue_novector")
    dsn = pg.create_database(pg_server, name)
    try:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f"alter database {name} set jobqueue.pgvector = 'off'")
        apply_migrations(dsn)
        with pg.connect(dsn) as conn:
            assert _type(conn) == "real[]"
            ids = {key: _file(conn, key) for key in FILES}
            for key, vector in FILES.items():
                _embed(conn, ids[key], key.rsplit("/", 1)[1], vector, "model-a")
            found = _search(conn, [1.0, 0.1, 0.0], 3)
            assert [r["content"] for r in found] == ["east.txt", "northeast.txt", "north.txt"]
            with pytest.raises(psycopg.errors.RaiseException, match="dimensions"):
                _search(conn, [1.0, 0.0], 3)
    finally:
        pg.drop_database(pg_server, name)


def test_ingest_stores_vectors_with_their_model_and_reports_progress(
    worker: Any, conn: Conn, storage: Storage, embeddings: Embeddings, httpserver: HTTPServer
) -> None:
    """A file of about 1,000 chunks: the ingest_files row shows each stage as it comes and
    the embedding advancing batch by batch (recorded by a test-only trigger), then done."""
    conn.execute("create table progress_seen (at timestamptz default clock_timestamp(), p jsonb)")
    conn.execute(
        "create function record_progress() returns trigger language plpgsql as $$"
        " begin insert into public.progress_seen (p) values (new.progress); return new; end $$"
    )
    conn.execute(
        "create trigger record_progress after update on ingest_files for each row"
        " when (new.progress is distinct from old.progress) execute function record_progress()"
    )
    text = " ".join(f"word{i:05d}" for i in range(150_000))
    file_id = upload(conn, storage, "big.txt", text.encode())
    # A provider taking 0.1 s a call: each batch of 200 chunks (4 calls) outlasts the 0.25 s
    # between progress writes, so the embedding stage is seen advancing however fast the host.
    import time as clock

    original = embeddings.__call__

    def slow(request: Any) -> Any:
        clock.sleep(0.1)
        return original(request)

    httpserver.clear()
    httpserver.expect_request(re.compile("^/storage/v1/object/.*")).respond_with_handler(storage)
    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(slow)
    app = worker(EMBEDDINGS_URL=httpserver.url_for("/v1"), EMBEDDINGS_MODEL="m")
    [reported] = run(app)
    assert reported["status"] == "done", reported["error"]
    seen = [r["p"] for r in conn.execute("select p from progress_seen order by at").fetchall()]
    stages = [p["stage"] for p in seen]
    assert stages[0] == "downloading" and "extracting" in stages and stages[-1] == "done"
    embedding = [p["done"] for p in seen if p["stage"] == "embedding"]
    assert len(embedding) >= 2 and embedding == sorted(embedding)
    row = file_row(conn, file_id)
    assert row["progress"]["stage"] == "done"
    stored = conn.execute(
        "select count(*) as n, count(distinct embedding_model) as models,"
        " min(embedding_model) as model,"
        " (select pg_typeof(c.embedding)::text from file_chunks c where c.file_id = %s limit 1)"
        " as type from file_chunks where file_id = %s",
        (file_id, file_id),
    ).fetchone()
    assert (
        stored["models"] == 1 and stored["model"] == "m" and stored["type"] == "extensions.vector"
    )


def test_the_local_run_searches_offline_with_its_hashing_stand_in(
    worker: Any,
    conn: Conn,
    storage: Storage,
    db: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bundled samples, embedded by `jobqueue up`'s local endpoint (no network, no model),
    then `jobqueue search` against it: the file that shares the question's words comes first."""
    from importlib.resources import files

    from jobqueue.tools.cli import main
    from jobqueue.tools.local.embeddings_server import MODEL, LocalEmbeddings, hashed_vector

    assert hashed_vector("population of the city") != hashed_vector("a cat")
    with LocalEmbeddings() as local:
        for name in ("hello.txt", "notes.md", "cities.csv", "status.html"):
            sample = files("jobqueue.tools").joinpath(f"samples/{name}")
            upload(conn, storage, name, sample.read_bytes())
        app = worker(EMBEDDINGS_URL=local.url, EMBEDDINGS_MODEL=MODEL)
        assert all(r["status"] == "done" for r in run(app))
        monkeypatch.setenv("EMBEDDINGS_URL", local.url)
        monkeypatch.setenv("EMBEDDINGS_MODEL", MODEL)
        assert main(["--database-url", db, "--json", "search", "city population country"]) == 0
    out = capsys.readouterr().out.splitlines()
    found = json.loads("\n".join(line for line in out if not line.startswith('{"severity"')))
    assert found[0]["file"] == "uploads/cities.csv", found
