"""The entry point: runs a command, turning every failure into one line and an exit status.

It imports the group (``app``) and the commands that register on it (``commands``); neither of
those imports this module, so the imports run one way: main -> commands -> app.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from jobqueue.tools.cli import commands  # noqa: F401 - registers the commands on the group
from jobqueue.tools.cli.app import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, cli


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
