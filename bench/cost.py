"""cost: what a million jobs cost on serverless, from durations and memory measured here.

Measured in this run, with served functions: worker_pull calls of 100 no-op jobs, of 1 no-op job
(what the instant kick makes when jobs arrive one at a time), and of 200 ms jobs; cron_tick's
wall time per job with the backlog settings (it waits on its calls, and Lambda bills the
wait); the peak memory of each function. Then, per 1,000,000 jobs: invocations, billed
GB-seconds (Lambda) or vCPU- and GiB-seconds (Cloud Run), and dollars at list prices, beside
the seed runbook on Supabase Edge Functions (5 jobs a minute) and procrastinate on one small VM.

    python bench/cost.py [--jobs 5000] [--procrastinate-rate 480] [--vm-hourly 0.0208]

Prices are the providers' list prices read on 2026-12-05 (US East / Tier 1 regions, x86,
before free tiers and discounts); pass yours to see your region's.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from _common import enqueue_noops, machine, scratch_database
from drain import SECRET
from jobqueue.tools.serving import serve_pipeline
from memory import tree_rss_mb

MILLION = 1_000_000
# aws.amazon.com/lambda/pricing (x86, first 6 billion GB-s a month), read 2026-12-05.
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_PER_MILLION_REQUESTS = 0.20
# cloud.google.com/run/pricing (Tier 1, request-based billing), read 2026-12-05; each request's
# time is rounded up to 100 ms, and one instance (1 vCPU, 512 MiB) serves it.
RUN_VCPU_SECOND = 0.000024
RUN_GIB_SECOND = 0.0000025
RUN_PER_MILLION_REQUESTS = 0.40
# supabase.com/docs (Manage Edge Function Invocations usage), read 2026-12-05: beyond the plan's
# quota (2 million on Pro), $2 per million invocations.
EDGE_PER_MILLION_INVOCATIONS = 2.0
# What infra/aws/template.yaml configures.
WORKER_MB, CRON_MB = 512, 256


def post(http: httpx.Client, url: str, body: dict[str, object]) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    answer = http.post(url, json=body)
    answer.raise_for_status()
    return time.perf_counter() - started, answer.json()


def worker_calls(url: str, max_jobs: int, calls: int | None = None) -> list[tuple[float, int]]:
    """(seconds, jobs) of each call until the queue is empty, or of `calls` calls."""
    made: list[tuple[float, int]] = []
    with httpx.Client(headers={"x-job-worker-secret": SECRET}, timeout=300) as http:
        while calls is None or len(made) < calls:
            seconds, answer = post(http, url, {"max_jobs": max_jobs})
            made.append((seconds, int(answer["processed"])))  # type: ignore[call-overload]
            if answer["queue_empty"]:
                break
    return made


def enqueue_sleepers(dsn: str, count: int, sleep_ms: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate jobs, job_attempts")
        conn.execute(
            "insert into jobs (type, input) select 'echo', jsonb_build_object('sleep_ms', %s)"
            " from generate_series(1, %s)",
            (sleep_ms, count),
        )


def tick_seconds_per_job(url: str, max_jobs: int) -> float:
    """cron_tick's wall time a job (Lambda bills it while the tick waits on its calls), ticks
    with the backlog settings until the queue is empty."""
    body = {"iterations": 100, "delay": 0, "max_jobs": max_jobs, "concurrency": 4}
    seconds = jobs = 0.0
    with httpx.Client(headers={"x-cron-secret": SECRET}, timeout=600) as http:
        while True:
            took, summary = post(http, url, body)
            seconds += took
            jobs += float(summary["processed"])  # type: ignore[arg-type]
            if summary["stopped"] == "queue_empty":
                return seconds / jobs


def per_call(calls: list[tuple[float, int]]) -> tuple[float, float]:
    """Mean seconds a call, mean jobs a call (calls that found work)."""
    working = [c for c in calls if c[1] > 0] or calls
    return statistics.mean(s for s, _ in working), statistics.mean(j for _, j in working)


def lambda_cost(invocations: float, seconds_each: float, mb: int) -> tuple[float, float]:
    """(GB-seconds, dollars): duration rounded up to 1 ms, memory as configured."""
    billed = math.ceil(seconds_each * 1000) / 1000
    gb_seconds = invocations * billed * mb / 1024
    dollars = gb_seconds * LAMBDA_GB_SECOND + invocations / MILLION * LAMBDA_PER_MILLION_REQUESTS
    return gb_seconds, dollars


def run_cost(invocations: float, seconds_each: float) -> tuple[float, float]:
    """(vCPU-seconds, dollars): each request rounded up to 100 ms on 1 vCPU and 512 MiB."""
    billed = math.ceil(seconds_each * 10) / 10
    vcpu_seconds = invocations * billed
    dollars = (
        vcpu_seconds * (RUN_VCPU_SECOND + 0.5 * RUN_GIB_SECOND)
        + invocations / MILLION * RUN_PER_MILLION_REQUESTS
    )
    return vcpu_seconds, dollars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument(
        "--procrastinate-rate",
        type=float,
        default=480.0,
        help="jobs/s of one procrastinate worker (bench/peers.py measures it; 2026-11-29: ~480)",
    )
    parser.add_argument(
        "--vm-hourly", type=float, default=0.0208, help="a 2-vCPU, 2 GB VM's price an hour"
    )
    args = parser.parse_args()
    print(machine())
    with (
        scratch_database() as dsn,
        tempfile.TemporaryDirectory() as logs,
        serve_pipeline(dsn, SECRET, SECRET, Path(logs)) as (worker, cron),
    ):
        enqueue_noops(dsn, 1000)
        worker_calls(worker.url, 100)  # warm: the instance learns job durations
        enqueue_noops(dsn, args.jobs)
        batch_s, batch_jobs = per_call(worker_calls(worker.url, 100))
        enqueue_noops(dsn, 300)
        single_s, _ = per_call(worker_calls(worker.url, 1, calls=300))
        enqueue_sleepers(dsn, 100, 200)
        slow_s, slow_jobs = per_call(worker_calls(worker.url, 100))
        enqueue_noops(dsn, args.jobs)
        cron_per_job = tick_seconds_per_job(cron.url, 100)
        # Slow jobs: 4 calls of 20 at once, so the tick waits about a quarter of their time.
        enqueue_sleepers(dsn, 160, 200)
        cron_per_slow_job = tick_seconds_per_job(cron.url, 20)
        worker_mb, cron_mb = tree_rss_mb(worker.pid), tree_rss_mb(cron.pid)

    print(
        f"measured: worker_pull call of {batch_jobs:.0f} no-op jobs {batch_s * 1000:.1f} ms;"
        f" of 1 job {single_s * 1000:.1f} ms; of {slow_jobs:.0f} jobs of 200 ms"
        f" {slow_s:.2f} s; cron_tick's wall time a job (backlog settings, concurrency 4)"
        f" {cron_per_job * 1e6:.0f} us for no-ops, {cron_per_slow_job * 1000:.1f} ms for"
        f" 200 ms jobs"
    )
    print(
        f"peak memory (server process tree, gunicorn master + worker): worker_pull"
        f" {worker_mb:.0f} MB, cron_tick {cron_mb:.0f} MB; Lambda billed at the template's"
        f" {WORKER_MB} and {CRON_MB} MB"
    )
    rows: list[tuple[str, float, str, float, str]] = []
    for label, jobs_per_call, seconds, cron_job_seconds in (
        ("no-op", batch_jobs, batch_s, cron_per_job),
        ("200 ms job", slow_jobs, slow_s, cron_per_slow_job),
    ):
        calls = MILLION / jobs_per_call
        cron_seconds = cron_job_seconds * MILLION
        # One tick makes up to 100 calls, and lasts at most CRON_TICK_BUDGET_SECONDS (120).
        cron_calls = max(calls / 100, cron_seconds / 120)
        w_gb, w_usd = lambda_cost(calls, seconds, WORKER_MB)
        c_gb, c_usd = lambda_cost(cron_calls, cron_seconds / cron_calls, CRON_MB)
        rows.append(
            (
                f"Lambda, scheduled, {label}",
                calls + cron_calls,
                f"{w_gb + c_gb:,.0f} GB-s",
                w_usd + c_usd,
                f"{MILLION * seconds / jobs_per_call / 3600:.2f} h of worker time",
            )
        )
        k_seconds = single_s + (seconds / jobs_per_call - batch_s / batch_jobs)
        k_gb, k_usd = lambda_cost(MILLION, k_seconds, WORKER_MB)
        kc_gb, kc_usd = lambda_cost(MILLION, k_seconds, CRON_MB)
        rows.append(
            (
                f"Lambda, kicked one job at a time, {label}",
                2 * MILLION,
                f"{k_gb + kc_gb:,.0f} GB-s",
                k_usd + kc_usd,
                "each job its own tick and call",
            )
        )
        r_cpu, r_usd = run_cost(calls, seconds)
        rc_cpu, rc_usd = run_cost(cron_calls, cron_seconds / cron_calls)
        rows.append(
            (
                f"Cloud Run, scheduled, {label}",
                calls + cron_calls,
                f"{r_cpu + rc_cpu:,.0f} vCPU-s",
                r_usd + rc_usd,
                "100 ms rounding",
            )
        )
    seed_invocations = MILLION / 5 * 6  # a cron-tick and 5 worker-pull calls per 5 jobs
    rows.append(
        (
            "seed runbook: Edge Functions, 5 jobs a minute",
            seed_invocations,
            "-",
            seed_invocations / MILLION * EDGE_PER_MILLION_INVOCATIONS,
            f"{MILLION / 5 / 60 / 24:.0f} days to drain",
        )
    )
    vm_hours = MILLION / args.procrastinate_rate / 3600
    rows.append(
        (
            "procrastinate, 1 worker on one small VM",
            0,
            f"{vm_hours:.2f} VM-h",
            vm_hours * args.vm_hourly,
            f"the VM itself: ${args.vm_hourly * 730:.2f} a month, busy or not",
        )
    )
    print("\nper 1,000,000 jobs, at list prices read 2026-12-05, before free tiers:")
    print(f"{'':46s} {'invocations':>12s} {'billed':>16s} {'dollars':>9s}")
    for label, invocations, billed, dollars, note in rows:
        print(f"{label:46s} {invocations:12,.0f} {billed:>16s} {dollars:9.3f}  {note}")


if __name__ == "__main__":
    main()
