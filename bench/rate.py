"""Rate-aware ingest against an OpenAI-shaped provider that enforces its budget (issue 19).

N small files (one embedding call each) through two served worker_pull instances, each driven
by its own served cron_tick at concurrency 4, against a provider stand-in allowing BUDGET
requests a minute (sliding, exact) and answering 429 with OpenAI's headers beyond it. The
database's limit for the key is the same budget. Prints: the fraction of the budget used
(target >= 0.90), 429s received (target: at most one per pause window), failed jobs (0),
attempts spent on 429s (0), and the wall time beside the ideal (work / budget).

    python bench/rate.py [--files N] [--budget B]      (defaults 2000 files, 1000 a minute)
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from werkzeug import Request
from werkzeug.serving import WSGIRequestHandler, make_server

from _common import machine, scratch_database
from jobqueue.tools.local.rate_limited_provider import RateLimitedProvider
from jobqueue.tools.local.storage_server import LocalStorage
from jobqueue.tools.serving import serve

MODEL = "bench-embedding"


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--budget", type=int, default=1000)
    args = parser.parse_args()
    print(machine())
    provider = RateLimitedProvider(args.budget)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return provider(Request(environ))(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key, worker_secret, cron_secret = (secrets.token_urlsafe(16) for _ in range(3))
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database() as dsn,
        LocalStorage(Path(tmp) / "storage", key) as storage,
    ):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("select set_rate_limit(%s, %s)", (f"embeddings:{MODEL}", args.budget))
            for n in range(args.files):
                target = Path(storage.root) / "uploads" / f"f{n}.txt"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f"file {n} of the benchmark")
            conn.execute(
                "insert into ingest_files (bucket, path)"
                " select 'uploads', 'f' || n || '.txt' from generate_series(0, %s - 1) n",
                (args.files,),
            )
        worker_env = {
            "JOB_WORKER_SECRET": worker_secret,
            "DATABASE_URL": dsn,
            "SUPABASE_URL": storage.url,
            "SUPABASE_SERVICE_ROLE_KEY": key,
            "EMBEDDINGS_URL": f"http://127.0.0.1:{server.server_port}/v1",
            "EMBEDDINGS_MODEL": MODEL,
        }
        logs = Path(tmp)
        with (
            serve("worker_pull", worker_env, logs) as w1,
            serve("worker_pull", worker_env, logs) as w2,
            serve(
                "cron_tick",
                {
                    "CRON_SECRET": cron_secret,
                    "JOB_WORKER_SECRET": worker_secret,
                    "WORKER_PULL_URL": w1.url,
                },
                logs,
            ) as c1,
            serve(
                "cron_tick",
                {
                    "CRON_SECRET": cron_secret,
                    "JOB_WORKER_SECRET": worker_secret,
                    "WORKER_PULL_URL": w2.url,
                },
                logs,
            ) as c2,
            psycopg.connect(dsn, autocommit=True) as conn,
        ):
            started = time.monotonic()

            def tick(url: str) -> None:
                httpx.post(
                    url,
                    json={"iterations": 20, "delay": 0, "concurrency": 4, "max_jobs": 20},
                    headers={"x-cron-secret": cron_secret},
                    timeout=300,
                )

            while True:
                ticks = [threading.Thread(target=tick, args=(c.url,)) for c in (c1, c2)]
                for t in ticks:
                    t.start()
                for t in ticks:
                    t.join()
                left = conn.execute(
                    "select count(*) from ingest_files where status not in ('processed', 'failed')"
                ).fetchone()
                if left and left[0] == 0:
                    break
                time.sleep(1)
            wall = time.monotonic() - started
            failed = conn.execute("select count(*) from jobs where status = 'failed'").fetchone()
            spent = conn.execute(
                "select count(*) from job_attempts where outcome in ('retry', 'failed')"
            ).fetchone()
    arrivals = sorted(provider.arrivals)
    minutes = max(1, int((arrivals[-1] - arrivals[0]) // 60))
    full = [
        sum(1 for t in arrivals if start <= t < start + 60)
        for start in arrivals
        if start + 60 <= arrivals[-1]
    ]
    used = (sum(full) / len(full) / args.budget) if full else 1.0
    ideal = max(0.0, (args.files - args.budget) / args.budget * 60)
    print(f"{args.files} files, budget {args.budget} requests a minute, 2 workers x 4 callers")
    print(f"  budget used (mean over full minute windows): {used:.2f} (target >= 0.90)")
    print(f"  most requests in any minute: {max(full or [len(arrivals)])} (budget {args.budget})")
    print(f"  429s received: {provider.refused} over about {minutes} minute(s)")
    print(
        f"  failed jobs: {failed[0] if failed else '?'}; attempts spent on 429s:"
        f" {spent[0] if spent else '?'}"
    )
    print(
        f"  wall time {wall:.0f} s beside the ideal {ideal:.0f} s"
        " (the first minute's budget is free)"
    )


if __name__ == "__main__":
    main()
