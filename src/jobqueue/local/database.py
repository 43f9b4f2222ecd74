"""The database of a local run: ``DATABASE_URL`` when set, else an embedded PostgreSQL
(pgserver, pip-installed) whose data lives in a folder of the project, reused from run to run."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def local_database(database_url: str | None, data_dir: Path) -> Iterator[tuple[str, str]]:
    """(DSN, a description for the screen); the embedded server stops when the block ends."""
    if database_url:
        yield database_url, "DATABASE_URL"
        return
    try:
        import pgserver
    except ImportError:
        raise RuntimeError(
            "no database: set DATABASE_URL, or pip install pgserver for an embedded one"
        ) from None

    pgdata = data_dir / "pgdata"
    data_dir.mkdir(parents=True, exist_ok=True)
    reused = (pgdata / "PG_VERSION").is_file()
    with warnings.catch_warnings():  # platformdirs on a machine without XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    try:
        how = "reused" if reused else "created"
        yield str(server.get_uri()), f"embedded PostgreSQL in {pgdata} ({how})"
    finally:
        server.cleanup()
