"""drain: N no-op jobs drained through a served worker_pull over HTTP (max_jobs 100) by 1 and
by 4 concurrent callers, and through a served cron_tick driving it. Prints jobs/s. Then the
callers again with the jobs spread over 20 group keys under one limited concurrency key
(fair claiming and limits in use), and each keyed figure's ratio to its plain one. Last, the
per-stage profiles of the 1-caller drains, plain and keyed, from worker_pull's Server-Timing
header.

Each round drains plain then keyed back to back, so every keyed figure has a plain one measured
seconds apart; the rates printed are medians over the rounds and each ratio is the median of the
rounds' own ratios (on a shared machine one drain can move 15% from the next).

    python bench/drain.py [--jobs 20000] [--groups 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from _common import count_done, enqueue_noops, machine, median, scratch_database, timed
from jobqueue.tools.serving import serve_pipeline

SECRET = "bench-worker-secret"


class Profile:
    """worker_pull's own stages (its Server-Timing header) summed over calls, beside the
    time each call took as the caller saw it."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self.calls = 0
        self.client_ms = 0.0
        self.jobs = 0

    def add(self, response: httpx.Response, processed: int) -> None:
        self.calls += 1
        self.jobs += processed
        self.client_ms += response.elapsed.total_seconds() * 1000
        for item in response.headers.get("server-timing", "").split(","):
            name, _, duration = item.strip().partition(";dur=")
            if name and duration:
                self.stages[name] = self.stages.get(name, 0.0) + float(duration)

    def print(self, title: str) -> None:
        per_call = self.jobs / max(self.calls, 1)
        print(f"per worker_pull call of {per_call:.0f} jobs ({title}, 1 caller), in ms:")
        stages = dict(self.stages)
        # "check" (is the output storable?) is timed inside each job's duration: show apart.
        if "handlers" in stages and "check" in stages:
            stages["handlers"] -= stages["check"]
        inside = sum(stages.values())
        stages["HTTP, framework and Python outside the stages"] = self.client_ms - inside
        for name, total in stages.items():
            share = total / self.client_ms if self.client_ms else 0.0
            print(f"  {name:48s} {total / self.calls:7.3f}  {share:6.1%}")
        print(f"  {'total, as the caller saw it':48s} {self.client_ms / self.calls:7.3f}")


def pull_until_empty(url: str, max_jobs: int, profile: Profile | None = None) -> Iterator[int]:
    """POSTs to worker_pull until it reports queue_empty; yields each call's processed count."""
    with httpx.Client(headers={"x-job-worker-secret": SECRET}, timeout=120) as http:
        while True:
            response = http.post(url, json={"max_jobs": max_jobs})
            answer = response.json()
            if profile is not None:
                profile.add(response, answer["processed"])
            yield answer["processed"]
            if answer["queue_empty"]:
                return


def drain_with_callers(
    url: str, callers: int, max_jobs: int, profile: Profile | None = None
) -> None:
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(lambda _: sum(pull_until_empty(url, max_jobs, profile)), range(callers)))


def drain_with_cron(url: str) -> None:
    with httpx.Client(headers={"x-cron-secret": SECRET}, timeout=300) as http:
        body = {"iterations": 100, "delay": 0, "max_jobs": 100, "concurrency": 4}
        while http.post(url, json=body).json()["stopped"] != "queue_empty":
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.jobs
    print(machine())
    rates: dict[tuple[bool, int], list[float]] = {}
    profiles = {False: Profile(), True: Profile()}
    with (
        scratch_database() as dsn,
        tempfile.TemporaryDirectory() as logs,
        serve_pipeline(dsn, SECRET, SECRET, Path(logs)) as (worker, cron),
    ):
        for run in range(args.rounds):
            for callers in (1, 4):
                for keyed in (False, True):
                    groups = args.groups if keyed else 0
                    if run == 0:  # warm: the instance learns job durations, plans are made
                        enqueue_noops(dsn, n, groups=groups)
                        drain_with_callers(worker.url, callers, 100)
                    enqueue_noops(dsn, n, groups=groups)
                    watch = profiles[keyed] if callers == 1 else None
                    seconds = timed(
                        lambda c=callers, w=watch: drain_with_callers(worker.url, c, 100, w)
                    )
                    assert count_done(dsn) == n
                    rates.setdefault((keyed, callers), []).append(n / seconds)
        enqueue_noops(dsn, n)
        seconds = timed(lambda: drain_with_cron(cron.url))
        assert count_done(dsn) == n
        cron_rate = n / seconds
    results = {key: median(values) for key, values in rates.items()}
    for (keyed, callers), rate in sorted(results.items()):
        keys = f", {args.groups} groups + limit" if keyed else ""
        label = f"worker_pull, {callers} caller{'s' if callers > 1 else ''}{keys}"
        print(f"{label:45s} {rate:10,.0f} jobs/s")
    print(f"{'cron_tick (concurrency 4, max_jobs 100)':45s} {cron_rate:10,.0f} jobs/s")
    print(f"{'ratio 4 callers / 1 caller':45s} {results[(False, 4)] / results[(False, 1)]:10.2f}")
    for callers in (1, 4):
        plain, keyed = rates[(False, callers)], rates[(True, callers)]
        paired = [k / p for p, k in zip(plain, keyed, strict=True)]
        spread = ", ".join(f"{r:.2f}" for r in paired)
        label = f"ratio keyed / plain, {callers} caller(s)"
        print(f"{label:45s} {median(paired):10.2f}  (rounds: {spread})")
    profiles[False].print("plain")
    profiles[True].print(f"{args.groups} groups + limit")


if __name__ == "__main__":
    main()
