"""The operator's commands. Each reads the database through ``jobqueue.tools.operations`` (one SQL
call each) and prints a table, or JSON with ``--json``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.table import Table

from jobqueue.supabase_keys import KEY_VARIABLES
from jobqueue.tools import operations
from jobqueue.tools.cli.app import Failed, Settings, Unreachable, cli, setting

console = Console()
pass_settings = click.make_pass_decorator(Settings)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str = "") -> None:
    table = Table(*columns, title=title or None)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


# --- status ---------------------------------------------------------------------------------


@cli.command()
@pass_settings
def status(settings: Settings) -> None:
    """The status view, problems first. Exit 1 when there is a problem."""
    with operations.connect(settings.database_url) as conn:
        row = operations.status(conn)

    def render(data: dict[str, Any]) -> None:
        if data["problems"]:
            for problem in data["problems"]:
                console.print(f"[red]problem:[/red] {problem}")
        else:
            console.print("[green]no problems[/green]")
        counts = {k: data[k] for k in ("queued", "running", "done", "failed", "cancelled")}
        _table([counts], list(counts), "jobs")
        details = {k: v for k, v in data.items() if k not in counts and k != "problems"}
        _table([{"field": k, "value": v} for k, v in details.items()], ["field", "value"])

    settings.emit(row, render)
    if row["problems"]:
        raise click.exceptions.Exit(1)


# --- jobs -----------------------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """List and inspect jobs."""


@jobs.command("list")
@click.option("--status", "job_status", type=click.Choice(operations.JOB_STATUSES))
@click.option("--type", "job_type")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@pass_settings
def jobs_list(settings: Settings, job_status: str | None, job_type: str | None, limit: int) -> None:
    """The newest jobs first."""
    with operations.connect(settings.database_url) as conn:
        rows = operations.list_jobs(conn, job_status, job_type, limit)
    columns = ["id", "type", "status", "attempts", "run_at", "error"]
    settings.emit(rows, lambda data: _table(data, columns))


@jobs.command("show")
@click.argument("job_id", type=int)
@pass_settings
def jobs_show(settings: Settings, job_id: int) -> None:
    """One job and every attempt it had, with its error."""
    with operations.connect(settings.database_url) as conn:
        found = operations.show_job(conn, job_id)
    if found is None:
        raise Failed(f"no job {job_id}")

    def render(data: dict[str, Any]) -> None:
        fields = {k: v for k, v in data.items() if k != "attempt_history"}
        _table(
            [
                {
                    "field": k,
                    "value": json.dumps(v, default=str) if isinstance(v, dict | list) else v,
                }
                for k, v in fields.items()
            ],
            ["field", "value"],
            f"job {job_id}",
        )
        _table(
            data["attempt_history"],
            ["attempt", "outcome", "worker", "started_at", "finished_at", "error"],
            "attempts",
        )

    settings.emit(found, render)


# --- operator actions -----------------------------------------------------------------------


def _report(
    settings: Settings, action: str, changed: dict[int, bool], missing: Sequence[int] = ()
) -> None:
    rows = [
        {"id": i, "changed": c, **({"found": False} if i in missing else {})}
        for i, c in changed.items()
    ]
    settings.emit(rows, lambda data: _table(data, ["id", "changed"], action))
    if not changed or not all(changed.values()):
        gone = [str(i) for i in missing]
        unchanged = [str(i) for i, c in changed.items() if not c and i not in missing]
        problems = []
        if gone:
            problems.append(f"not found: {', '.join(gone)}")
        if unchanged:
            problems.append(f"not changed: {', '.join(unchanged)} (see jobqueue jobs show ID)")
        raise Failed(f"{action}: " + ("; ".join(problems) or "nothing to do"))


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="every failed job (of --type)")
@click.option("--type", "job_type", help="with --all-failed: only this type")
@pass_settings
def retry(
    settings: Settings, job_ids: tuple[int, ...], all_failed: bool, job_type: str | None
) -> None:
    """Run failed or cancelled jobs again, with one more attempt each."""
    if job_ids and all_failed:
        raise click.UsageError("give job ids or --all-failed, not both")
    if not job_ids and not all_failed:
        raise click.UsageError("give the ids of the jobs to retry, or --all-failed")
    if job_type and not all_failed:
        raise click.UsageError("--type goes with --all-failed")
    with operations.connect(settings.database_url) as conn:
        ids = list(job_ids) or operations.failed_ids(conn, job_type)
        changed = operations.each(conn, "retry_job", ids)
        _report(settings, "retry", changed, operations.missing_ids(conn, ids))


@cli.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@pass_settings
def cancel(settings: Settings, job_ids: tuple[int, ...]) -> None:
    """Cancel queued or running jobs (a running one's worker is refused when it reports)."""
    with operations.connect(settings.database_url) as conn:
        changed = operations.each(conn, "cancel_job", job_ids)
        _report(settings, "cancel", changed, operations.missing_ids(conn, job_ids))


@cli.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@pass_settings
def requeue(settings: Settings, job_ids: tuple[int, ...]) -> None:
    """Put stuck running jobs back in the queue now (their worker is fenced)."""
    with operations.connect(settings.database_url) as conn:
        changed = operations.each(conn, "requeue_job", job_ids)
        _report(settings, "requeue", changed, operations.missing_ids(conn, job_ids))


class JsonValue(click.ParamType):  # type: ignore[type-arg]
    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except RecursionError:
            self.fail("nested too deeply to be a job's input", param, ctx)
        except ValueError as exc:
            self.fail(f"not JSON: {exc}", param, ctx)


@cli.command()
@click.argument("job_type")
@click.option("--input", "payload", type=JsonValue(), default="{}", help="the job's input (JSON)")
@click.option(
    "--run-at",
    type=click.DateTime(
        ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
    ),
)
@click.option(
    "--priority",
    type=click.IntRange(-(2**31), 2**31 - 1),
    default=0,
    show_default=True,
    help="lower runs first (a PostgreSQL integer)",
)
@click.option("--max-attempts", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--dedupe-key", help="at most one live job per key")
@click.option("--count", type=click.IntRange(1, 1_000_000), default=1, show_default=True)
@pass_settings
def enqueue(
    settings: Settings,
    job_type: str,
    payload: Any,
    run_at: datetime | None,
    priority: int,
    max_attempts: int,
    dedupe_key: str | None,
    count: int,
) -> None:
    """Add jobs."""
    from jobqueue.jsonsafe import jsonb_problem, text_problem

    problem = (
        jsonb_problem(payload) or text_problem(job_type) or ("is empty" if not job_type else None)
    )
    if problem:
        raise click.UsageError(f"the job's input or type {problem}")
    with (
        operations.connect(settings.database_url) as conn,
        _bar(settings, "enqueueing", shown=count > 1) as bar,
    ):
        task = bar.add_task("jobs", total=count)
        live = operations.live_job(conn, dedupe_key) if dedupe_key else None
        ids = operations.enqueue(
            conn,
            job_type,
            payload,
            count=count,
            priority=priority,
            run_at=run_at,
            max_attempts=max_attempts,
            dedupe_key=dedupe_key,
            progress=lambda done: bar.update(task, completed=done),
        )
    if live is not None and ids == [live] * len(ids):
        settings.emit(
            {"enqueued": [], "existing": live},
            lambda _: console.print(
                f"not enqueued: job {live} already holds dedupe key {dedupe_key!r} (queued or "
                "running)"
            ),
        )
        return
    settings.emit(
        {"enqueued": ids},
        lambda data: console.print(
            f"enqueued {len(ids)} {job_type} job(s): {', '.join(map(str, ids[:20]))}"
            + (" ..." if len(ids) > 20 else "")
        ),
    )


def _bar(settings: Settings, label: str, *extra: ProgressColumn, shown: bool = True) -> Progress:
    """The progress bar of a long command: label, bar, done/total and ``extra`` columns; none
    with --json (one JSON document is all a script reads) or when ``shown`` is false."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        console=console,
        disable=settings.as_json or not shown,
    )


# --- processing -----------------------------------------------------------------------------


@cli.command()
@click.argument("iterations", type=click.IntRange(1, 100), default=5)
@pass_settings
def process(settings: Settings, iterations: int) -> None:
    """Ask cron_tick to run ITERATIONS worker_pull calls now (like manual_process_jobs).

    Needs CRON_TICK_URL and CRON_SECRET (environment or .env.local). Exit 1 when cron_tick
    refuses or every worker_pull call of the tick failed."""
    import httpx

    url, secret = setting("CRON_TICK_URL"), setting("CRON_SECRET")
    if not url or not secret:
        raise click.UsageError("set CRON_TICK_URL and CRON_SECRET (environment or .env.local)")
    with operations.connect(settings.database_url) as conn:
        body = operations.tick_body(conn, iterations)
    try:
        answer = httpx.post(url, json=body, headers={"x-cron-secret": secret}, timeout=600)
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach cron_tick at {url}: {type(exc).__name__}") from None
    try:
        summary = answer.json()
    except ValueError:
        summary = {"error": "not_json", "message": answer.text[:200]}
    settings.emit(summary, lambda data: _table([data], list(data), "tick"))
    if not answer.is_success:
        raise Failed(f"cron_tick answered HTTP {answer.status_code}")
    if summary.get("calls", 0) > 0 and summary.get("errors") == summary.get("calls"):
        raise Failed("every worker_pull call of this tick failed")


@cli.command()
@click.option(
    "--max-jobs", type=click.IntRange(1, 100), default=100, show_default=True, help="jobs per claim"
)
@pass_settings
def work(settings: Settings, max_jobs: int) -> None:
    """Process jobs here, in this process, until the queue is empty (the job types of
    JOB_HANDLER_MODULES too). A progress bar; one JSON document with --json."""
    from rich.progress import TextColumn

    from jobqueue import log
    from jobqueue.tools.local.inprocess import drain

    with operations.connect(settings.database_url) as conn:
        runnable = operations.runnable_count(conn)
    with (
        log.only_problems(),
        _bar(settings, "processing", TextColumn("{task.fields[by]}")) as bar,
    ):
        task = bar.add_task("jobs", total=runnable or None, by="")
        totals = drain(
            settings.database_url,
            max_jobs,
            lambda seen: bar.update(
                task,
                completed=sum(seen.values()),
                by=", ".join(f"{k} {v}" for k, v in sorted(seen.items())),
            ),
        )
    settings.emit(
        totals,
        lambda data: _table(
            [data["by_status"] | {"processed": data["processed"]}],
            ["processed", *data["by_status"]],
            "processed",
        ),
    )


# --- uploads --------------------------------------------------------------------------------


@cli.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--bucket", default="uploads", show_default=True)
@click.option("--prefix", default="", help="folder inside the bucket")
@click.option("--no-upload", is_flag=True, help="the bytes are already in Storage at the path")
@pass_settings
def ingest(
    settings: Settings, paths: tuple[Path, ...], bucket: str, prefix: str, no_upload: bool
) -> None:
    """Upload files to Supabase Storage and register each (an ingest_files row, which queues
    its ingest_file job). Needs SUPABASE_URL and SUPABASE_SECRET_KEY (or the legacy
    SUPABASE_SERVICE_ROLE_KEY) unless --no-upload."""
    from jobqueue.tools.local.uploads import upload_and_register

    url = setting("SUPABASE_URL")
    key = setting("SUPABASE_SECRET_KEY") or setting("SUPABASE_SERVICE_ROLE_KEY")
    if not no_upload and (not url or not key):
        raise click.UsageError(f"set SUPABASE_URL and {KEY_VARIABLES}, or --no-upload")
    with (
        operations.connect(settings.database_url) as conn,
        _bar(
            settings, "uploading" if not no_upload else "registering", shown=len(paths) > 1
        ) as bar,
    ):
        task = bar.add_task("files", total=len(paths))
        rows = upload_and_register(
            conn,
            paths,
            bucket,
            prefix,
            None if no_upload else (str(url), str(key)),
            progress=lambda done: bar.update(task, completed=done),
        )
    settings.emit(rows, lambda data: _table(data, ["file_id", "bucket", "path"], "registered"))


# --- housekeeping ---------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(value: str) -> timedelta:
    match = _DURATION.match(value.strip())
    if match is None:
        raise click.BadParameter("a number and a unit: 30m, 12h, 7d, 2w")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise click.BadParameter(f"{value} is longer than any job has existed") from None


@cli.command()
@click.option("--older-than", required=True, help="e.g. 7d, 12h, 2w")
@click.option("--dry-run", is_flag=True, help="count what would be deleted, delete nothing")
@pass_settings
def purge(settings: Settings, older_than: str, dry_run: bool) -> None:
    """Delete finished jobs (done, failed, cancelled) older than this, with their attempts."""
    age = _duration(older_than)
    with operations.connect(settings.database_url) as conn:
        deleted = operations.purge(conn, age, dry_run=dry_run)
    key = "would_delete" if dry_run else "deleted"
    verb = "would delete" if dry_run else "deleted"
    settings.emit({key: deleted}, lambda d: console.print(f"{verb} {d[key]} job(s)"))


@cli.command()
@click.option("--dry-run", is_flag=True, help="list what would be applied, apply nothing")
@pass_settings
def migrate(settings: Settings, dry_run: bool) -> None:
    """Apply the migrations the database has not had (recorded as the Supabase CLI does)."""
    from jobqueue.tools.migrate import apply_migrations, find_migrations, pending_migrations

    if not find_migrations():
        raise Failed("no migrations found in this installation")
    if dry_run:
        pending = [f"{m.version}_{m.name}" for m in pending_migrations(settings.database_url)]
        settings.emit(
            {"pending": pending},
            lambda d: console.print("\n".join(d["pending"]) or "nothing to apply"),
        )
        return
    applied = apply_migrations(settings.database_url)
    settings.emit(
        {"applied": applied},
        lambda d: console.print(
            f"applied {len(d['applied'])} migration(s)"
            + (": " + ", ".join(d["applied"]) if d["applied"] else "")
        ),
    )


# --- the local run --------------------------------------------------------------------------


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".jobqueue"),
    show_default=True,
    help="embedded database, Storage files and logs (reused next time)",
)
@click.option(
    "--period",
    type=click.FloatRange(0.2, 3600),
    default=2.0,
    show_default=True,
    help="seconds between scheduled calls to cron_tick (pg_cron's minute, shortened)",
)
@click.option(
    "--samples",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="a folder of files to upload instead of the bundled samples",
)
@click.option("--exit-when-done", is_flag=True, help="stop once every sample is processed")
@click.option(
    "--yes",
    is_flag=True,
    help="with --database-url naming a database on another host: yes, migrate it and upload "
    "the samples into it",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="save what the screen showed as SVG",
)
@click.pass_context
def up(
    ctx: click.Context,
    data_dir: Path,
    period: float,
    samples: Path | None,
    exit_when_done: bool,
    record: Path | None,
    yes: bool,
) -> None:
    """Run the whole pipeline here: database, Storage, both functions, a scheduler, and sample
    uploads processed before your eyes. Its own embedded database, unless --database-url
    (before `up`) names another: DATABASE_URL and .env.local, which usually name a hosted
    project, are never used for it."""
    from jobqueue.tools.local.database import describe, is_local
    from jobqueue.tools.local.run import Options, run

    explicit = ctx.find_root().params.get("database_url")
    if explicit and not is_local(explicit) and not yes:
        raise click.UsageError(
            f"{describe(explicit)} is not on this machine: `up` would migrate it and upload "
            "its samples into it. Add --yes if that is what you want."
        )
    run(Options(data_dir, explicit, period, samples, exit_when_done, record))


def _instant(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


# --- rate limits ----------------------------------------------------------------------------


@cli.group()
def limits() -> None:
    """Limits every worker shares: requests and tokens per minute, running jobs at once."""


@limits.command("list")
@pass_settings
def limits_list(settings: Settings) -> None:
    """Every key, its limits, pause, running and queued jobs, and the last minute's usage."""
    with operations.connect(settings.database_url) as conn:
        rows = operations.list_limits(conn)
    columns = [
        "key",
        "requests_per_minute",
        "tokens_per_minute",
        "max_running",
        "paused_until",
        "running",
        "queued",
        "requests_last_minute",
        "tokens_last_minute",
    ]
    settings.emit(rows, lambda data: _table(data, columns, "rate limits"))


@limits.command("set")
@click.argument("key")
@click.option("--requests-per-minute", type=int, help="requests started per minute, all workers")
@click.option("--tokens-per-minute", type=int, help="tokens started per minute, all workers")
@click.option("--max-running", type=int, help="jobs of this concurrency_key running at once")
@pass_settings
def limits_set(
    settings: Settings,
    key: str,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    max_running: int | None,
) -> None:
    """Create or replace KEY's limits (an option left out: no such limit)."""
    for name, value in (
        ("--requests-per-minute", requests_per_minute),
        ("--tokens-per-minute", tokens_per_minute),
        ("--max-running", max_running),
    ):
        if value is not None and not 1 <= value <= 2**31 - 1:
            raise click.UsageError(f"{name} must be at least 1 (leave it out for no limit)")
    with operations.connect(settings.database_url) as conn:
        row = operations.set_limit(conn, key, requests_per_minute, tokens_per_minute, max_running)
    settings.emit(row, lambda data: console.print(f"limits of {data['key']} set"))


@limits.command("pause")
@click.argument("key")
@click.option("--for", "duration", required=True, help="e.g. 30s, 10m, 2h")
@pass_settings
def limits_pause(settings: Settings, key: str, duration: str) -> None:
    """Grant KEY nothing for a while (every worker); an earlier pause end is never moved up."""
    until = datetime.now(UTC) + _duration(duration)
    with operations.connect(settings.database_url) as conn:
        paused = operations.pause_limit(conn, key, until)
    settings.emit(
        {"key": key, "paused_until": paused},
        lambda data: console.print(f"{key} paused until {_instant(data['paused_until'])}"),
    )


@limits.command("resume")
@click.argument("key")
@pass_settings
def limits_resume(settings: Settings, key: str) -> None:
    """End KEY's pause now."""
    with operations.connect(settings.database_url) as conn:
        operations.resume_limit(conn, key)
    settings.emit({"key": key, "paused_until": None}, lambda _: console.print(f"{key} resumed"))


# --- search ---------------------------------------------------------------------------------


@cli.command()
@click.argument("question")
@click.option("--count", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--model", help="search chunks of this model (default: EMBEDDINGS_MODEL)")
@click.option("--bucket", help="only files of this bucket")
@click.option("--path-prefix", help="only files whose path starts with this")
@pass_settings
def search(
    settings: Settings,
    question: str,
    count: int,
    model: str | None,
    bucket: str | None,
    path_prefix: str | None,
) -> None:
    """The chunks that best answer QUESTION: it is embedded with the configured endpoint
    (EMBEDDINGS_URL, EMBEDDINGS_MODEL, EMBEDDINGS_API_KEY), then match_file_chunks ranks them."""
    import httpx

    url, configured = setting("EMBEDDINGS_URL"), setting("EMBEDDINGS_MODEL")
    model = model or configured
    if not url or not model:
        raise click.UsageError("set EMBEDDINGS_URL and EMBEDDINGS_MODEL (or --model)")
    key = setting("EMBEDDINGS_API_KEY")
    try:
        answer = httpx.post(
            url.rstrip("/") + "/embeddings",
            json={"model": model, "input": [question]},
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=60,
        )
        answer.raise_for_status()
        vector = [float(x) for x in answer.json()["data"][0]["embedding"]]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise Unreachable(f"the embeddings endpoint did not embed the question: {exc}") from None
    filters = {k: v for k, v in (("bucket", bucket), ("path_prefix", path_prefix)) if v}
    with operations.connect(settings.database_url) as conn:
        rows = operations.search(conn, vector, count, model, filters)
    found = [
        {
            "similarity": round(float(r["similarity"]), 4),
            "file": f"{r['bucket']}/{r['path']}",
            "chunk": r["chunk_index"],
            "content": r["content"],
            "file_id": str(r["file_id"]),
        }
        for r in rows
    ]
    settings.emit(
        found,
        lambda data: _table(
            [{**d, "content": d["content"][:120].replace("\n", " ")} for d in data],
            ["similarity", "file", "chunk", "content"],
            f"best chunks for: {question}",
        ),
    )


@cli.command()
@click.option("--model", help="re-embed files not embedded with this model (default: all)")
@click.option("--bucket", help="only files of this bucket")
@pass_settings
def reembed(settings: Settings, model: str | None, bucket: str | None) -> None:
    """Queue processed files to be embedded again (after a change of EMBEDDINGS_MODEL): low
    priority, paced by the embeddings key's rate limits; old vectors stay searchable under
    their own model until then."""
    with operations.connect(settings.database_url) as conn:
        queued = operations.reembed(conn, model, bucket)
    settings.emit(
        {"queued": queued}, lambda d: console.print(f"queued {d['queued']} file(s) to embed again")
    )
