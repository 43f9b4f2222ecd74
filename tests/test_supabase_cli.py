"""`jobqueue migrate` and the real Supabase CLI (`supabase db push`, npm supabase@2.117.0)
agree on what is applied, in both orders, and on every file name the CLI makes (issue 12).
.ci/run installs the CLI into .ci/tools; elsewhere set SUPABASE_CLI to its path."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from jobqueue.tools.migrate import MIGRATIONS_DIR, apply_migrations, pending_migrations
from jobqueue.tools.serving import ROOT
from tests.support import extras, pg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli() -> str:
    path = os.environ.get("SUPABASE_CLI") or str(
        ROOT / ".ci" / "tools" / "node_modules" / ".bin" / "supabase"
    )
    if not Path(path).exists():
        extras.unavailable(
            "the Supabase CLI is not installed: npm i -E supabase@2.117.0 "
            "(.ci/run puts it in .ci/tools)"
        )
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A Supabase project folder holding this repository's migrations."""
    shutil.copytree(MIGRATIONS_DIR, tmp_path / "supabase" / "migrations")
    return tmp_path


def as_url(dsn: str) -> str:
    """The CLI takes a percent-encoded URL only; the test server has no TLS."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(dsn)
    auth = quote(str(p.get("user", "postgres")))
    if p.get("password"):
        auth += ":" + quote(str(p["password"]))
    host = f"{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}"
    return f"postgresql://{auth}@{host}/{quote(str(p['dbname']))}?sslmode=disable"


def push(cli: str, project: Path, dsn: str) -> str:
    done = subprocess.run(
        [
            cli,
            "db",
            "push",
            "--db-url",
            as_url(dsn),
            "--yes",
            "--include-all",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_cli_first_then_our_runner_applies_nothing(cli: str, project: Path, empty_db: str) -> None:
    out = push(cli, project, empty_db)
    assert "create_ingest_files" in out
    assert apply_migrations(empty_db) == []
    with pg.connect(empty_db) as conn:
        conn.execute("insert into ingest_files (bucket, path) values ('b', 'p')")
        assert conn.execute("select count(*) as n from jobs").fetchone() == {"n": 1}


def test_our_runner_first_then_the_cli_pushes_only_what_is_new(
    cli: str, project: Path, empty_db: str
) -> None:
    assert len(apply_migrations(empty_db)) >= 4
    made = subprocess.run(
        [cli, "migration", "new", "add-thumbnails"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [new] = [p for p in (project / "supabase" / "migrations").glob("*_add-thumbnails.sql")]
    new.write_text("create table if not exists public.thumbnails (id bigint primary key);\n")
    assert new.name in made.stdout + made.stderr
    out = push(cli, project, empty_db)
    assert "add-thumbnails" in out and "create_job_queue" not in out.split("Applying")[-1]
    # Our runner, given the same folder, agrees that nothing is left.
    migrations = project / "supabase" / "migrations"
    assert pending_migrations(empty_db, migrations) == []
    assert apply_migrations(empty_db, migrations) == []
    with pg.connect(empty_db) as conn:
        rows = conn.execute(
            "select version, name from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    assert rows[-1]["name"] == "add-thumbnails" and len(rows) == len(list(migrations.glob("*.sql")))


@pytest.mark.parametrize("shape", ["uuid", "bigint"])
def test_db_push_upgrades_a_seed_set_up_in_place(
    cli: str, project: Path, empty_db: str, shape: str
) -> None:
    """The seed's own users upgrade with `supabase db push`, as the runbook taught them."""
    from tests.test_upgrade_from_seed import SHAPES, _after_checks, _before, _seed

    _seed(empty_db, SHAPES[shape])
    expected = _before(empty_db, SHAPES[shape])
    push(cli, project, empty_db)
    _after_checks(empty_db, expected)
