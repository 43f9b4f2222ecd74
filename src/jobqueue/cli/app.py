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
import sys
from collections.abc import Callable, Sequence
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


def _global_options_first(args: list[str]) -> list[str]:
    """``--json`` and ``--database-url`` belong to every command: accepted after the
    subcommand too (``jobqueue jobs list --json``), moved before it for click."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if arg == "--json" or arg.startswith("--database-url="):
            front.append(arg)
        elif arg == "--database-url" and index + 1 < len(args):
            front += [arg, args[index + 1]]
            index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a command; every failure is one line on stderr and an exit status, never a
    traceback."""
    import psycopg

    from jobqueue.cli import commands  # noqa: F401 - registers the commands

    args = _global_options_first(list(argv) if argv is not None else sys.argv[1:])
    try:
        # Without standalone mode click returns an Exit's code instead of raising it.
        result = cli.main(args=args, standalone_mode=False)
        if isinstance(result, int):
            return result
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("jobqueue: interrupted", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as exc:
        # Bare `jobqueue` (or a bare group): its help, as --help shows it.
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        return 0
    except click.UsageError as exc:
        click.echo(f"jobqueue: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"jobqueue: {exc.format_message()}", err=True)
        return exc.exit_code
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as exc:
        first = str(exc).splitlines()[0]
        click.echo(
            f"jobqueue: the database is not migrated ({first}): run jobqueue migrate", err=True
        )
        return EXIT_UNREACHABLE
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"jobqueue: cannot reach the database: {first}", err=True)
        return EXIT_UNREACHABLE
    except psycopg.Error as exc:
        click.echo(f"jobqueue: the database refused: {str(exc).splitlines()[0]}", err=True)
        return EXIT_FAILED
    except Exception as exc:
        import os

        if os.environ.get("JOBQUEUE_DEBUG") == "1":
            raise
        click.echo(
            f"jobqueue: {type(exc).__name__}: {exc} (JOBQUEUE_DEBUG=1 shows where)", err=True
        )
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
