"""`jobqueue up`: the whole pipeline on one machine, as it runs in production.

A database (DATABASE_URL, else an embedded PostgreSQL in the data folder, reused next time),
the migrations, a Storage stand-in over a local folder, worker_pull and cron_tick served by
functions-framework on local ports, a scheduler calling cron_tick over HTTP every period (pg_cron's
part), and the sample files uploaded as a user's app uploads them (Storage, then an
``ingest_files`` row). A live view shows them processed; Ctrl-C stops everything it started.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobqueue.tools import operations
from jobqueue.tools.local.database import local_database
from jobqueue.tools.local.embeddings_server import MODEL as EMBEDDINGS_MODEL
from jobqueue.tools.local.embeddings_server import LocalEmbeddings
from jobqueue.tools.local.storage_server import LocalStorage
from jobqueue.tools.local.uploads import upload_and_register
from jobqueue.tools.migrate import apply_migrations
from jobqueue.tools.serving import serve

BUCKET = "uploads"


@dataclass(frozen=True)
class Options:
    data_dir: Path
    database_url: str | None
    period: float
    samples: Path | None
    exit_when_done: bool
    record: Path | None


def sample_files(folder: Path | None) -> list[Path]:
    if folder is None:
        folder = Path(str(files("jobqueue.tools") / "samples"))
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def run(options: Options) -> int:
    console = Console(record=options.record is not None)
    # A terminal's Ctrl-C and a supervisor's SIGTERM end the run the same way. SIGINT is set
    # too: a run started in the background by a shell (`jobqueue up &`, a CI step) inherits it
    # ignored, and Python then never turns it into KeyboardInterrupt, so the run went on.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with ExitStack() as stack:
            started = time.monotonic()
            dsn, where = stack.enter_context(local_database(options.database_url, options.data_dir))
            console.print(f"database: {where}")
            apply_migrations(dsn)
            key = secrets.token_urlsafe(24)
            storage = stack.enter_context(LocalStorage(options.data_dir / "storage", key))
            embeddings = stack.enter_context(LocalEmbeddings())
            worker_secret, cron_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            logs = options.data_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            worker = stack.enter_context(
                serve(
                    "worker_pull",
                    {
                        "DATABASE_URL": dsn,
                        "JOB_WORKER_SECRET": worker_secret,
                        "SUPABASE_URL": storage.url,
                        "SUPABASE_SERVICE_ROLE_KEY": key,
                        "EMBEDDINGS_URL": embeddings.url,
                        "EMBEDDINGS_MODEL": EMBEDDINGS_MODEL,
                    },
                    logs,
                )
            )
            cron = stack.enter_context(
                serve(
                    "cron_tick",
                    {
                        "CRON_SECRET": cron_secret,
                        "JOB_WORKER_SECRET": worker_secret,
                        "WORKER_PULL_URL": worker.url,
                    },
                    logs,
                )
            )
            console.print(f"storage: {storage.url} (files in {storage.root})")
            console.print(
                f"embeddings: {embeddings.url} ({EMBEDDINGS_MODEL}: a hashing stand-in for "
                "demos, not semantic); try: "
                f"EMBEDDINGS_URL={embeddings.url} EMBEDDINGS_MODEL={EMBEDDINGS_MODEL} "
                'jobqueue --database-url <the database above> search "city population"'
            )
            console.print(f"worker_pull: {worker.url}   cron_tick: {cron.url}   logs: {logs}")
            console.print(
                f"ready in {time.monotonic() - started:.1f} s; scheduler every {options.period:g} s"
            )
            stack.enter_context(scheduler(dsn, cron.url, cron_secret, options.period))
            with operations.connect(dsn) as conn:
                batch = f"run-{time.strftime('%Y%m%d-%H%M%S')}"
                uploaded = upload_and_register(
                    conn, sample_files(options.samples), BUCKET, batch, (storage.url, key)
                )
            console.print(f"uploaded {len(uploaded)} files to {BUCKET}/{batch}/")
            watch(console, dsn, [row["file_id"] for row in uploaded], options.exit_when_done)
        console.print("done: every process this run started has ended")
    except KeyboardInterrupt:
        console.print("stopped: every process this run started has ended")
    finally:
        if options.record is not None:
            options.record.parent.mkdir(parents=True, exist_ok=True)
            console.save_svg(str(options.record), title="jobqueue up")
    return 0


@contextmanager
def scheduler(dsn: str, cron_url: str, cron_secret: str, period: float) -> Iterator[None]:
    """pg_cron's part: POST the configured tick to cron_tick every `period` seconds."""
    stop = threading.Event()
    with operations.connect(dsn) as conn:
        body = operations.tick_body(conn, 5)

    def loop() -> None:
        with httpx.Client(timeout=300) as client:
            while not stop.is_set():
                # A failed call: cron_tick's own log and the status view say why.
                with contextlib.suppress(httpx.HTTPError):
                    client.post(cron_url, json=body, headers={"x-cron-secret": cron_secret})
                stop.wait(period)

    thread = threading.Thread(target=loop, name="local-scheduler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def watch(console: Console, dsn: str, file_ids: list[str], exit_when_done: bool) -> None:
    progress = Progress(
        TextColumn("files"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    task = progress.add_task("files", total=len(file_ids))
    with operations.connect(dsn) as conn, Live(console=console, refresh_per_second=8) as live:
        reported = False
        while True:
            files_now = operations.files(conn, file_ids)
            counts = operations.job_counts(conn, file_ids)
            finished = [f for f in files_now if f["status"] in ("processed", "failed")]
            progress.update(task, completed=len(finished))
            live.update(Group(progress, _counts(counts)))
            if len(finished) == len(file_ids) and not reported:
                live.stop()
                console.print(_per_file(files_now))
                reported = True
                if exit_when_done:
                    return
                console.print("watching the queue; Ctrl-C stops everything")
                live.start()
            time.sleep(0.25)


def _counts(status: dict[str, Any]) -> Table:
    table = Table("queued", "running", "done", "failed", title="jobs")
    table.add_row(*(str(status[k]) for k in ("queued", "running", "done", "failed")))
    return table


def _per_file(rows: list[dict[str, Any]]) -> Table:
    table = Table("file", "result", "details", title="files")
    for row in rows:
        name = row["path"].rsplit("/", 1)[-1]
        if row["status"] == "processed":
            meta = row["metadata"] or {}
            # The keys ingest_file writes (handlers/ingest/handler.py), and nothing else.
            details = (
                f"{meta.get('detected_type')}, {meta.get('size_bytes')} bytes, "
                f"{meta.get('characters')} characters"
            )
            table.add_row(name, "[green]processed[/green]", details)
        else:
            table.add_row(name, "[red]failed[/red]", row["error"] or "")
    return table
