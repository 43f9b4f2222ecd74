"""The migrations: psql and the runner, twice, on plain PostgreSQL; roles and privileges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobqueue.migrate import MIGRATIONS_DIR, apply_migrations, find_migrations
from tests.support import pg
from tests.support.queue import Conn


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    name = pg.unique_name("jobqueue_empty")
    dsn = pg.create_database(pg_server, name)
    yield dsn
    pg.drop_database(pg_server, name)


def test_psql_applies_every_migration_twice(empty_db: str) -> None:
    pg.psql_apply(empty_db)
    pg.psql_apply(empty_db)
    with pg.connect(empty_db) as conn:
        conn.execute("insert into ingest_files (bucket, path) values ('b', 'p')")
        assert conn.execute("select count(*) as n from jobs").fetchone()["n"] == 1
        assert conn.execute("select count(*) as n from job_worker_settings").fetchone()["n"] == 1


def test_runner_records_versions_like_the_supabase_cli(empty_db: str) -> None:
    applied = apply_migrations(empty_db)
    assert applied == [m.version for m in find_migrations()]
    assert apply_migrations(empty_db) == []
    with pg.connect(empty_db) as conn:
        rows = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations"
            " order by version"
        ).fetchall()
    assert [(r["version"], r["name"]) for r in rows] == [
        (m.version, m.name) for m in find_migrations()
    ]
    assert all(len(r["statements"]) == 1 and r["statements"][0] for r in rows)


def test_migration_files_follow_the_supabase_cli_naming() -> None:
    names = sorted(path.name for path in MIGRATIONS_DIR.glob("*.sql"))
    assert names and [m.path.name for m in find_migrations()] == names


def test_a_misnamed_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "create_things.sql").write_text("select 1;")
    with pytest.raises(ValueError, match="14-digit timestamp"):
        find_migrations(tmp_path)


def test_a_failing_migration_leaves_nothing_behind(empty_db: str, tmp_path: Path) -> None:
    (tmp_path / "20990101000000_good.sql").write_text("create table good (id int);")
    (tmp_path / "20990101000001_bad.sql").write_text("create table half (id int); select 1/0;")
    with pytest.raises(psycopg.errors.DivisionByZero):
        apply_migrations(empty_db, tmp_path)
    with pg.connect(empty_db) as conn:
        tables = conn.execute("select to_regclass('good') as good, to_regclass('half') as half")
        assert tables.fetchone() == {"good": "good", "half": None}
        versions = conn.execute("select version from supabase_migrations.schema_migrations")
        assert [r["version"] for r in versions.fetchall()] == ["20990101000000"]


def test_supabase_roles_exist_after_migrating(conn: Conn) -> None:
    roles = conn.execute(
        "select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role')"
        " order by rolname"
    ).fetchall()
    assert [r["rolname"] for r in roles] == ["anon", "authenticated", "service_role"]


def test_no_function_of_ours_is_executable_by_the_api_roles(conn: Conn) -> None:
    functions = conn.execute(
        "select p.oid::regprocedure::text as name,"
        " has_function_privilege('anon', p.oid, 'execute') as anon,"
        " has_function_privilege('authenticated', p.oid, 'execute') as authenticated,"
        " has_function_privilege('service_role', p.oid, 'execute') as service_role"
        " from pg_proc p where p.pronamespace = 'public'::regnamespace"
    ).fetchall()
    assert len(functions) > 20
    exposed = [f["name"] for f in functions if f["anon"] or f["authenticated"]]
    assert exposed == []
    assert all(f["service_role"] for f in functions)


def test_rls_is_on_and_the_status_view_is_private(conn: Conn) -> None:
    tables = conn.execute(
        "select relname, relrowsecurity from pg_class"
        " where relname in ('jobs', 'ingest_files', 'job_attempts', 'job_worker_settings')"
    ).fetchall()
    assert len(tables) == 4 and all(t["relrowsecurity"] for t in tables)
    for role in ("anon", "authenticated"):
        privileged = conn.execute(
            "select has_table_privilege(%s, 'job_processing_status', 'select') as v", (role,)
        ).fetchone()["v"]
        assert privileged is False
