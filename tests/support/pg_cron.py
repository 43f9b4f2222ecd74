"""Access to the server's pg_cron database (scripts/setup-test-postgres.sh sets it up)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg

from tests.support import extras, pg

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


def require(server: str) -> str:
    """The pg_cron database's DSN, or skip (fail in CI) saying why it is not usable here."""
    with pg.connect(server) as conn:
        preload = conn.execute("show shared_preload_libraries").fetchone()[
            "shared_preload_libraries"
        ]
        database = conn.execute(
            "select current_setting('cron.database_name', true) as d"
        ).fetchone()["d"]
        plpython = conn.execute(
            "select count(*) as n from pg_available_extensions where name = 'plpython3u'"
        ).fetchone()["n"]
    reason = None
    if "pg_cron" not in preload or not database:
        reason = "pg_cron is not preloaded: run scripts/setup-test-postgres.sh (root, Debian)"
    elif not plpython:
        reason = "PL/Python is not installed: run scripts/setup-test-postgres.sh (root, Debian)"
    if reason:
        extras.unavailable(reason)
    return pg.with_database(server, str(database))


def reset(dsn: str) -> None:
    """Empties the pg_cron database back to what a new Supabase project has."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
            " and backend_type = 'client backend'"
        )
        for statement in (
            "drop extension if exists pg_cron cascade",
            "drop extension if exists pg_net cascade",
            "drop extension if exists supabase_vault cascade",
            "drop schema if exists net cascade",
            "drop schema if exists vault cascade",
            "drop schema if exists extensions cascade",
            "drop schema if exists supabase_migrations cascade",
            "drop schema if exists public cascade",
            "create schema public authorization pg_database_owner",
            "grant usage on schema public to public",
            "alter database " + conn.info.dbname + " reset all",
        ):
            conn.execute(statement)


def _real(conn: psycopg.Connection[Any], library: str) -> bool:
    preload = conn.execute("show shared_preload_libraries").fetchone()
    available = conn.execute(
        "select count(*) from pg_available_extensions where name = %s", (library,)
    ).fetchone()
    return bool(preload and library in preload[0] and available and available[0])


def enable_pg_net(dsn: str) -> str:
    """Supabase's real pg_net where the server has it (its worker serves the pg_cron database
    only), else the PL/Python stand-in; under JOBQUEUE_NO_SKIP=1 (CI) the real one is required."""
    return _enable(dsn, "pg_net", "pg_net_standin.sql")


def enable_vault(dsn: str) -> str:
    """Supabase's real Vault where the server has it, else the stand-in (not under CI)."""
    return _enable(dsn, "supabase_vault", "vault_standin.sql")


def _enable(dsn: str, library: str, standin: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if _real(conn, library):
            conn.execute(f"create extension if not exists {library} cascade")
            return library
    _require_real(library)
    install(dsn, standin)
    return "stand-in"


def _require_real(library: str) -> None:
    if os.environ.get("JOBQUEUE_NO_SKIP") == "1":
        extras.unavailable(
            f"Supabase's real {library} is not installed and preloaded: run "
            "scripts/setup-test-postgres.sh (root, Debian, with ../shared/third_party)"
        )


def install(dsn: str, name: str) -> None:
    """Applies one of the tests-only SQL files (stand-ins for pg_net and Vault)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((SQL_DIR / name).read_text(encoding="utf-8").encode("utf-8"))
