"""The ``jobqueue`` command group: configuration, output and exit codes shared by every command.

Exit codes (scripts may rely on them):
  0  done
  1  the operation did not succeed (nothing to retry, a job not found, a tick whose calls failed)
  2  bad arguments
  3  the database (or cron_tick) cannot be reached, or the database is not migrated

The database is ``--database-url``, else ``DATABASE_URL``, else ``DATABASE_URL`` in
``.env.local`` (as the scripts read it), else the local server at 127.0.0.1:5432. ``--json`` on
any command prints one JSON document for scripts instead of tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from jobqueue import __version__

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"
EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class Failed(click.ClickException):
    """The operation ran but did not succeed: exit status 1, the message on stderr."""

    exit_code = EXIT_FAILED


class Unreachable(click.ClickException):
    exit_code = EXIT_UNREACHABLE


def setting(name: str) -> str | None:
    """The environment first, then ``.env.local`` in the current directory."""
    import os

    if os.environ.get(name):
        return os.environ[name]
    env_file = Path(".env.local")
    if env_file.is_file():
        from dotenv import dotenv_values

        value = dotenv_values(env_file).get(name)
        return value or None
    return None


def _json_value(value: Any) -> Any:
    """Times as RFC 3339, durations as seconds: what a script reading --json can parse."""
    from datetime import datetime, timedelta

    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


@dataclass
class Settings:
    database_url: str
    as_json: bool

    def emit(self, data: Any, render: Callable[[Any], None]) -> None:
        """``data`` as JSON with ``--json``, else as ``render`` draws it."""
        if self.as_json:
            click.echo(json.dumps(data, default=_json_value, indent=2))
        else:
            render(data)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="jobqueue")
@click.option("--database-url", help="libpq URL (default: DATABASE_URL, .env.local, local server)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout, for scripts")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, as_json: bool) -> None:
    """Operate the job queue: status, jobs, retries, uploads, migrations, a local run."""
    from jobqueue.settings import DSN_EXPECTED, is_connection_string

    dsn = database_url or setting("DATABASE_URL") or LOCAL
    if not is_connection_string(dsn):
        # Nothing was contacted, and libpq's message would quote the URL, password included.
        source = "--database-url" if database_url else "DATABASE_URL"
        raise click.UsageError(f"{source} {DSN_EXPECTED}")
    ctx.obj = Settings(dsn, as_json)
