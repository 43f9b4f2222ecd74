"""The database of a local run: an embedded PostgreSQL (pgserver, pip-installed) whose data
lives in a folder of the project, reused from run to run; or the one ``--database-url`` names on
the command line (never DATABASE_URL or .env.local, which usually name a hosted project)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _params(dsn: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}


def describe(dsn: str) -> str:
    """Which database, on which host: never the password."""
    params = _params(dsn)
    host = params.get("host") or "the local socket"
    port = f":{params['port']}" if params.get("port") else ""
    return f"database {params.get('dbname', params.get('user', 'postgres'))} on {host}{port}"


def is_local(dsn: str) -> bool:
    """A database on this machine: a socket, localhost or a loopback address."""
    hosts = (_params(dsn).get("host") or "").split(",")
    return all(
        not host
        or host.startswith("/")
        or host in ("localhost", "127.0.0.1", "::1")
        or host.startswith("127.")
        for host in hosts
    )


@contextmanager
def local_database(database_url: str | None, data_dir: Path) -> Iterator[tuple[str, str]]:
    """(DSN, a description for the screen); the embedded server stops when the block ends."""
    if database_url:
        yield database_url, f"{describe(database_url)} (from --database-url)"
        return
    pgdata = data_dir / "pgdata"
    data_dir.mkdir(parents=True, exist_ok=True)
    reused = (pgdata / "PG_VERSION").is_file()
    with _runtime_folder_of(data_dir), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError:
            raise RuntimeError(
                "no database: set DATABASE_URL, or pip install pgserver for an embedded one"
            ) from None
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    try:
        how = "reused" if reused else "created"
        yield str(server.get_uri()), f"embedded PostgreSQL in {pgdata} ({how})"
    finally:
        server.cleanup()


@contextmanager
def _runtime_folder_of(data_dir: Path) -> Iterator[None]:
    """pgserver takes one lock for every embedded server of a user (in the runtime folder it
    asks platformdirs for when it is imported, which also warns where XDG_RUNTIME_DIR is
    unset), held while a server starts or stops: two runs in two projects waited on each
    other's initdb. Its runtime folder is made this data folder's own, a short path (it may
    hold the server's socket) that is the same for every run of the same folder."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    runtime = Path(tempfile.gettempdir()) / f"jobqueue-{digest}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = before
