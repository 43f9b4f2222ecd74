"""Released migrations are frozen (issue 18: a released file is never edited).

supabase/released-migrations.txt records each released file's sha256; these tests fail CI on a
released file that changed or vanished, and show that the check catches an edit. A database
migrated with the released set and then with head must equal a fresh one migrated with head.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from jobqueue.tools.migrate import MIGRATIONS_DIR, apply_migrations, release_problems, released
from jobqueue.tools.serving import ROOT
from tests.support import pg

MANIFEST = ROOT / "supabase" / "released-migrations.txt"


def test_no_released_migration_has_changed() -> None:
    assert release_problems(MIGRATIONS_DIR, MANIFEST) == []
    assert released(MANIFEST), "the first release is recorded"


def test_the_check_catches_an_edited_a_removed_and_a_misplaced_file(tmp_path: Path) -> None:
    edited = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, edited)
    first, second, *_ = sorted(released(MANIFEST))
    with (edited / first).open("a", encoding="utf-8") as sql:
        sql.write("\n-- an innocent-looking edit\n")
    (edited / second).unlink()
    (edited / "20000101000000_too_early.sql").write_text("select 1;\n")
    problems = release_problems(edited, MANIFEST)
    assert any(first in p and "has changed" in p for p in problems)
    assert any(second in p and "is gone" in p for p in problems)
    assert any("too_early" in p and "sorts before" in p for p in problems)


def test_the_manifest_is_what_sha256sum_checks() -> None:
    done = subprocess.run(
        ["sha256sum", "--check", "--quiet", str(MANIFEST)],
        cwd=MIGRATIONS_DIR,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _schema(dsn: str) -> str:
    """pg_dump --schema-only, without what differs between any two databases (names of the
    database, comments of the dump, the migrations' own bookkeeping)."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    dump = subprocess.run(
        [
            "pg_dump",
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-schema=supabase_migrations",
            "-h",
            str(params.get("host", "127.0.0.1")),
            "-p",
            str(params.get("port", 5432)),
            "-U",
            str(params.get("user", "postgres")),
            str(params["dbname"]),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [
        line
        for line in dump.splitlines()
        if line.strip()
        and not line.startswith("--")
        and not line.startswith("\\")
        and not line.startswith("SET ")
        and not line.startswith("SELECT pg_catalog.set_config")
    ]
    return re.sub(r"jobqueue_(empty|head)_[0-9a-f]+", "DB", "\n".join(lines))


def test_released_then_head_equals_head_on_a_fresh_database(
    empty_db: str, pg_server: str, tmp_path: Path
) -> None:
    released_only = tmp_path / "released"
    released_only.mkdir()
    for name in released(MANIFEST):
        shutil.copy(MIGRATIONS_DIR / name, released_only / name)
    apply_migrations(empty_db, released_only)
    apply_migrations(empty_db)
    name = pg.unique_name("jobqueue_head")
    fresh = pg.create_database(pg_server, name)
    try:
        apply_migrations(fresh)
        assert _schema(empty_db) == _schema(fresh)
    finally:
        pg.drop_database(pg_server, name)


def test_files_processed_under_the_release_get_their_detected_type(
    empty_db: str, tmp_path: Path
) -> None:
    """20261206000000 keeps content_type as declared and moves the detected type to its own
    column: rows processed by 1.0.0 get it from their metadata, and a worker of 1.0.0 (which
    still names p_content_type) records the detected type without touching content_type."""
    import psycopg

    released_only = tmp_path / "released"
    released_only.mkdir()
    for name in released(MANIFEST):
        shutil.copy(MIGRATIONS_DIR / name, released_only / name)
    apply_migrations(empty_db, released_only)
    mark = (
        "select public.mark_ingest_file_processed(%s::uuid, 't', %s::jsonb, "
        "p_content_type => 'application/pdf')"
    )
    with psycopg.connect(empty_db, autocommit=True) as conn:
        [old] = conn.execute(
            "insert into ingest_files (bucket, path, content_type) values ('b', 'a.txt', "
            "'text/plain') returning id"
        ).fetchone() or [None]
        conn.execute(mark, (old, '{"detected_type": "application/pdf"}'))
    apply_migrations(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        row = conn.execute(
            "select content_type, detected_type from ingest_files where id = %s", (old,)
        ).fetchone()
        assert row == ("application/pdf", "application/pdf"), "1.0.0 overwrote it; now kept"
        [new] = conn.execute(
            "insert into ingest_files (bucket, path, content_type) values ('b', 'b.txt', "
            "'text/plain') returning id"
        ).fetchone() or [None]
        conn.execute(mark, (new, "{}"))
        row = conn.execute(
            "select content_type, detected_type from ingest_files where id = %s", (new,)
        ).fetchone()
        assert row == ("text/plain", "application/pdf")
