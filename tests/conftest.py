"""Fixtures: a fresh migrated database per test, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobqueue.tools.migrate import apply_migrations
from jobqueue.tools.serving import CONFIG_VARIABLES
from tests.support import pg

pytest_plugins = ["tests.support.ingest"]


@pytest.fixture(scope="session")
def pg_server() -> str:
    return pg.find_server()


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> Iterator[str]:
    """Migrated once per session; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    name = pg.unique_name("jobqueue_template")
    dsn = pg.create_database(pg_server, name)
    apply_migrations(dsn)
    yield name
    pg.drop_database(pg_server, name)


@pytest.fixture
def db(pg_server: str, template_db: str) -> Iterator[str]:
    name = pg.unique_name("jobqueue_test")
    dsn = pg.create_database(pg_server, name, template=template_db)
    yield dsn
    pg.drop_database(pg_server, name)


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    """A database with nothing in it: for the migrations themselves."""
    name = pg.unique_name("jobqueue_empty")
    dsn = pg.create_database(pg_server, name)
    yield dsn
    pg.drop_database(pg_server, name)


# Two test runs on one server take turns with the one pg_cron database (pg_cron serves one).
CRON_DB_LOCK = 7_422_002


@pytest.fixture
def cron_db(pg_server: str) -> Iterator[str]:
    """The server's pg_cron database, emptied and migrated, with pg_net and Vault (the real
    ones where setup-test-postgres.sh built them). Held under an advisory lock, so a second
    run on the same server waits instead of colliding; afterwards its schedules are removed,
    so no job is left calling a test's dead port every minute."""
    from tests.support import pg_cron

    dsn = pg_cron.require(pg_server)
    with psycopg.connect(pg_server, autocommit=True) as lock:
        lock.execute("select pg_advisory_lock(%s)", (CRON_DB_LOCK,))
        try:
            pg_cron.reset(dsn)
            apply_migrations(dsn)
            pg_cron.enable_pg_net(dsn)
            pg_cron.enable_vault(dsn)
            yield dsn
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "select cron.unschedule(jobid) from cron.job"
                    " where jobname in ('process-queued-jobs', 'prune-job-history')"
                )
            lock.execute("select pg_advisory_unlock(%s)", (CRON_DB_LOCK,))


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with pg.connect(db) as connection:
        yield connection


@pytest.fixture(autouse=True)
def _close_function_state() -> Iterator[None]:
    yield
    from tests.support.functions import close_all

    close_all()


@pytest.fixture(autouse=True)
def _no_ambient_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the variables they mean; none leak in from the developer's shell."""
    for name in CONFIG_VARIABLES - {"DATABASE_URL"}:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_secret_in_served_logs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """Whatever a test served (its functions' logs under tmp_path) never wrote one of the
    test module's secrets (its constants named *SECRET* or *KEY*)."""
    yield
    secrets = {
        value
        for name, value in vars(request.module).items()
        if isinstance(value, str) and len(value) >= 8 and ("SECRET" in name or "KEY" in name)
    }
    if not secrets:
        return
    for log in tmp_path.rglob("*.log"):
        text = log.read_text(encoding="utf-8", errors="replace")
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{log.name} holds a secret"
