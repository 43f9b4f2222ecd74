"""The migrations: psql and the runner, twice, on plain PostgreSQL; roles and privileges."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from jobqueue.tools.migrate import MIGRATIONS_DIR, apply_migrations, find_migrations
from tests.support import pg
from tests.support.queue import Conn


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
    with pytest.raises(ValueError, match="timestamp digits"):
        find_migrations(tmp_path)


def test_every_name_the_supabase_cli_makes_is_accepted(empty_db: str, tmp_path: Path) -> None:
    """`supabase migration new add-thumbnails` makes `<timestamp>_add-thumbnails.sql`."""
    for name in ("20990101000000_add-thumbnails.sql", "20990101000001_Add Things.v2.sql"):
        (tmp_path / name).write_text("select 1;")
    assert [m.name for m in find_migrations(tmp_path)] == ["add-thumbnails", "Add Things.v2"]
    assert apply_migrations(empty_db, tmp_path) == ["20990101000000", "20990101000001"]


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


# What a new Supabase project's public schema grants on everything created later.
SUPABASE_DEFAULT_GRANTS = """
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public
  grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public
  grant all on functions to anon, authenticated, service_role;
"""


@pytest.fixture
def supabase_like_db(empty_db: str) -> str:
    """An empty database with Supabase's roles and default grants, then our migrations."""
    with pg.connect(empty_db) as conn:
        conn.execute(
            "do $$ begin"
            " if not exists (select from pg_roles where rolname = 'anon') then"
            "   create role anon; end if;"
            " if not exists (select from pg_roles where rolname = 'authenticated') then"
            "   create role authenticated; end if;"
            " if not exists (select from pg_roles where rolname = 'service_role') then"
            "   create role service_role; end if;"
            " end $$"
        )
        conn.execute(SUPABASE_DEFAULT_GRANTS)
    apply_migrations(empty_db)
    return empty_db


def test_api_roles_hold_nothing_of_ours_even_after_supabase_default_grants(
    supabase_like_db: str,
) -> None:
    """Over the catalog, so a new table, sequence, view or function cannot slip through."""
    with pg.connect(supabase_like_db) as conn:
        relations = conn.execute(
            "select c.relname, c.relkind, r.rolname,"
            " has_table_privilege(r.rolname, c.oid,"
            "   'select,insert,update,delete,truncate,references,trigger') as on_table"
            " from pg_class c cross join (values ('anon'), ('authenticated')) r(rolname)"
            " where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'v', 'p')"
        ).fetchall()
        sequences = conn.execute(
            "select c.relname, r.rolname,"
            " has_sequence_privilege(r.rolname, c.oid, 'usage,select,update') as on_sequence"
            " from pg_class c cross join (values ('anon'), ('authenticated')) r(rolname)"
            " where c.relnamespace = 'public'::regnamespace and c.relkind = 'S'"
        ).fetchall()
        functions = conn.execute(
            "select p.oid::regprocedure::text as name, r.rolname"
            " from pg_proc p cross join (values ('anon'), ('authenticated')) r(rolname)"
            " where p.pronamespace = 'public'::regnamespace"
            " and has_function_privilege(r.rolname, p.oid, 'execute')"
        ).fetchall()
    assert len(relations) >= 8 and len(sequences) >= 4
    assert [r for r in relations if r["on_table"]] == []
    assert [s for s in sequences if s["on_sequence"]] == []
    assert functions == []


def test_every_security_definer_function_pins_its_search_path_and_is_service_role_only(
    conn: Conn,
) -> None:
    definers = conn.execute(
        "select p.oid::regprocedure::text as name, p.proconfig,"
        " array(select a.grantee::regrole::text from aclexplode(p.proacl) a"
        "       where a.privilege_type = 'EXECUTE' and a.grantee <> p.proowner) as executors,"
        " exists (select from aclexplode(p.proacl) a where a.grantee = 0) as public_execute"
        " from pg_proc p where p.pronamespace = 'public'::regnamespace and p.prosecdef"
    ).fetchall()
    assert len(definers) > 20
    for function in definers:
        assert any(setting.startswith("search_path=") for setting in function["proconfig"] or []), (
            function["name"]
        )
        assert function["executors"] == ["service_role"], function["name"]
        assert function["public_execute"] is False, function["name"]


def test_no_secret_in_any_migration() -> None:
    """Secrets are stored by setup-cron-config.sh, never written in a migration."""
    import re

    for migration in find_migrations():
        text = migration.path.read_text(encoding="utf-8")
        assert not re.search(r"(?i)(secret|password|key)\s*(=|:=)\s*'[^'<]{8,}'", text), (
            migration.path.name
        )
        assert "eyJ" not in text, f"{migration.path.name} holds what looks like a JWT"
