"""A real PgBouncer in transaction mode, as Supabase's pooler on port 6543 runs, for one test."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jobqueue.tools.serving import free_port
from tests.support import extras


def require() -> str:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        extras.unavailable(
            "PgBouncer is not installed: run scripts/setup-test-postgres.sh (root, Debian)"
        )
    return binary


@contextmanager
def transaction_pooler(dsn: str, pool_size: int = 2) -> Iterator[str]:
    """Yields a DSN that reaches `dsn`'s database through PgBouncer (pool_mode = transaction)."""
    binary = require()
    target = conninfo_to_dict(dsn)
    port = free_port()
    folder = tempfile.mkdtemp(prefix="jobqueue-pgbouncer-")
    os.chmod(folder, 0o777)  # PgBouncer refuses to run as root: it runs as postgres
    ini = os.path.join(folder, "pgbouncer.ini")
    with open(ini, "w") as config:
        config.write(
            "[databases]\n"
            f"queue = host={target.get('host', '127.0.0.1')} port={target.get('port', 5432)}"
            f" dbname={target['dbname']} user={target.get('user', 'postgres')}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = any\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
            f"unix_socket_dir =\nlogfile = {folder}/pgbouncer.log\n"
        )
    os.chmod(ini, 0o644)
    command = [binary, ini]
    if os.geteuid() == 0:
        command = [binary, "-u", "postgres", ini]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pooled = make_conninfo(host="127.0.0.1", port=str(port), dbname="queue", user="postgres")
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(pooled, connect_timeout=1, prepare_threshold=None):
                    break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PgBouncer did not start") from None
                time.sleep(0.05)
        yield pooled
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
