"""Applies supabase/migrations/ in file-name order, recording each the way the Supabase CLI does.

Versions go into ``supabase_migrations.schema_migrations`` (the CLI's own table), so a database
set up with this runner and one pushed with ``supabase db push`` agree on what is applied. File
names are those the CLI accepts: digits, an underscore, any name (`supabase migration new
add-thumbnails` makes `<timestamp>_add-thumbnails.sql`).

Released migrations are frozen: ``supabase/released-migrations.txt`` (``sha256sum`` format, so
``sha256sum -c`` checks it too) records every released file's checksum, and
:func:`release_problems` (run by the tests, so by CI) fails on a released file that changed or
vanished and on a new file ordered before the last released one: a database that applied a
version never receives an edit of it, so every change is a new file.

The migrations ship inside the package (``jobqueue/migrations`` is a link to
``supabase/migrations`` in the source tree, copied into wheels), so an installed ``jobqueue``
finds them wherever it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
RELEASED_NAME = "released-migrations.txt"
_FILE_NAME = re.compile(r"^(\d+)_(.+)\.sql$")
# Any fixed number: concurrent runners wait for each other instead of applying twice.
_LOCK_KEY = 7_422_001


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


def find_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migration names are <timestamp digits>_<name>.sql")
        found.append(Migration(match.group(1), match.group(2), path))
    return found


def pending_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations not yet recorded in the database, in the order they would apply."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute(
            "select to_regclass('supabase_migrations.schema_migrations') is not null"
        ).fetchone()
        done: set[str] = set()
        if exists and exists[0]:
            rows = conn.execute("select version from supabase_migrations.schema_migrations")
            done = {row[0] for row in rows}
    return [m for m in find_migrations(directory) if m.version not in done]


def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Applies the migrations not yet recorded; returns the versions it applied."""
    applied_now = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "create schema if not exists supabase_migrations;"
            "create table if not exists supabase_migrations.schema_migrations"
            " (version text primary key, statements text[], name text)"
        )
        done = {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
        for migration in find_migrations(directory):
            if migration.version in done:
                continue
            sql = migration.path.read_text(encoding="utf-8")
            with conn.transaction():
                conn.execute(sql.encode("utf-8"))
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, statements, name)"
                    " values (%s, %s, %s)",
                    (migration.version, [sql], migration.name),
                )
            applied_now.append(migration.version)
        conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def released(manifest: Path) -> dict[str, str]:
    """File name -> sha256 of each released migration, from a ``sha256sum``-format manifest
    (lines starting with # are comments)."""
    found = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            found[name.strip().lstrip("*")] = digest
    return found


def release_problems(directory: Path, manifest: Path) -> list[str]:
    """Why the migrations in ``directory`` break the release recorded in ``manifest``: a
    released file edited or removed, or a new file that sorts before the last released one
    (the Supabase CLI and this runner would apply it out of order, or never)."""
    import hashlib

    frozen = released(manifest)
    present = {m.path.name: m.path for m in find_migrations(directory)}
    problems = []
    for name, digest in frozen.items():
        path = present.get(name)
        if path is None:
            problems.append(f"{name} was released and is gone: restore it")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(
                f"{name} was released and has changed: restore it and put the change in a "
                "new migration file"
            )
    last = max(frozen, default="")
    for name in present:
        if name not in frozen and name < last:
            problems.append(f"{name} is new but sorts before the released {last}: rename it")
    return problems
