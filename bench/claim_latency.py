"""claim latency vs table size: one claim_jobs(100) with 10k, 100k and 1M rows in jobs, nearly
all of them done (as a queue looks after months), 1,000 queued. Each claim runs in a
transaction that is rolled back, so every sample sees the same table. Then the same with the
queued jobs in 20 groups (group_key) under a concurrency key with max_running 1,000 (limits
and turns in use), beside the plain figure of the same run; and the keyed claim again with all
the other rows queued under a paused key (a backlog waiting out a provider's 429), which a
claim must skip, not read.

    python bench/claim_latency.py [--max-rows 10000000]
"""

from __future__ import annotations

import argparse
import time

import psycopg

from _common import machine, median, scratch_database

QUEUED = 1_000
SAMPLES = 300


def fill(conn: psycopg.Connection, rows: int, keyed: bool = False, blocked: bool = False) -> None:
    conn.execute("truncate jobs, job_attempts, rate_limits cascade")
    if blocked:
        conn.execute("select set_rate_limit('paused')")
        conn.execute("select pause_rate_limit('paused', now() + interval '1 day')")
        conn.execute(
            "insert into jobs (type, group_key, concurrency_key)"
            " select 'echo', 'tenant-' || (n %% 20), 'paused' from generate_series(1, %s) n",
            (rows - QUEUED,),
        )
    else:
        conn.execute(
            "insert into jobs (type, status, attempts, finished_at, output)"
            " select 'echo', 'done', 1, now(), '{}' from generate_series(1, %s)",
            (rows - QUEUED,),
        )
    if keyed:
        conn.execute("select set_rate_limit('bench', p_max_running => 1000)")
        conn.execute(
            "insert into jobs (type, group_key, concurrency_key)"
            " select 'echo', 'tenant-' || (n %% 20), 'bench' from generate_series(1, %s) n",
            (QUEUED,),
        )
    else:
        conn.execute("insert into jobs (type) select 'echo' from generate_series(1, %s)", (QUEUED,))
    conn.execute("vacuum analyze jobs")


def claim_ms(conn: psycopg.Connection) -> float:
    samples = []
    for sample in range(SAMPLES + 50):
        started = time.perf_counter()
        with conn.transaction(force_rollback=True):
            conn.execute("select * from claim_jobs('bench', 100, 300, null)").fetchall()
        if sample >= 50:  # the first 50 warm the cache and the plan
            samples.append((time.perf_counter() - started) * 1000)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, default=1_000_000)
    sizes = [
        n for n in (10_000, 100_000, 1_000_000, 10_000_000) if n <= parser.parse_args().max_rows
    ]
    print(machine())
    results = {}
    keyed = {}
    blocked = {}
    with scratch_database() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        for rows in sizes:
            fill(conn, rows)
            results[rows] = claim_ms(conn)
            fill(conn, rows, keyed=True)
            keyed[rows] = claim_ms(conn)
            fill(conn, rows, keyed=True, blocked=True)
            blocked[rows] = claim_ms(conn)
            print(
                f"claim of 100 with {rows:>10,} rows in jobs: {results[rows]:7.3f} ms plain,"
                f" {keyed[rows]:7.3f} ms with groups and limits,"
                f" {blocked[rows]:7.3f} ms with the rest waiting under a paused key (median)"
            )
    top = sizes[-1]
    print(
        f"ratio {top:,} / 10,000: plain {results[top] / results[10_000]:.2f},"
        f" keyed {keyed[top] / keyed[10_000]:.2f},"
        f" paused backlog {blocked[top] / blocked[10_000]:.2f}"
    )
    print(
        f"keyed / plain at {top:,}: {keyed[top] / results[top]:.2f}"
        " (claims per second ratio is its inverse)"
    )


if __name__ == "__main__":
    main()
