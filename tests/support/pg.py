"""A real PostgreSQL for the tests: DATABASE_URL, else 127.0.0.1:5432, else an embedded server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def find_server() -> str:
    """The DSN of a maintenance database on a server the tests may create databases on."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    try:
        with psycopg.connect(LOCAL_SERVER, connect_timeout=2):
            return LOCAL_SERVER
    except psycopg.OperationalError:
        pass
    try:
        import pgserver  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError(
            "no PostgreSQL for the tests: set DATABASE_URL, run one on 127.0.0.1:5432, "
            "or `pip install pgserver` for an embedded one"
        ) from None
    server = pgserver.get_server(os.path.expanduser("~/.cache/jobqueue-pgdata"))
    return str(server.get_uri())


def with_database(dsn: str, name: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = name
    return make_conninfo(**params)


def create_database(server: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        query = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("{} template {}").format(query, sql.Identifier(template))
        conn.execute(query)
    return with_database(server, name)


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextmanager
def connect(dsn: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    from psycopg.rows import dict_row

    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def psql_apply(dsn: str) -> None:
    """Every migration in file-name order, as `psql -v ON_ERROR_STOP=1 -f` (the contract's way)."""
    import subprocess

    from jobqueue.tools.migrate import find_migrations

    for migration in find_migrations():
        subprocess.run(
            ["psql", dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(migration.path)],
            check=True,
            capture_output=True,
            text=True,
        )
