"""Rate-aware processing end to end (issue 19, "What it must show"): an OpenAI-shaped provider
that enforces its own per-minute budget with real 429s and OpenAI's headers, two served
worker_pull instances, each driven by its own served cron_tick at concurrency 4.

Across the run the provider never sees more than its budget in any 60 s window, no job fails,
no attempt is spent on a rate limit, and every file ends processed.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from jobqueue.tools.local.rate_limited_provider import RateLimitedProvider
from jobqueue.tools.serving import serve
from tests.support.ingest import KEY, Storage
from tests.support.queue import Conn

pytestmark = pytest.mark.slow

SECRET = "rate-worker-secret"
CRON = "rate-cron-secret"
MODEL = "test-embedding-3-small"
BUDGET = 20  # requests per minute, the provider's and ours
FILES = 26


def test_two_instances_share_the_providers_budget_and_no_upload_fails(
    db: str, conn: Conn, httpserver: HTTPServer, tmp_path: Path
) -> None:
    storage = Storage()
    provider = RateLimitedProvider(BUDGET)
    httpserver.expect_request(re.compile("^/storage/v1/object/.*")).respond_with_handler(storage)
    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(provider)
    conn.execute("select set_rate_limit(%s, %s)", (f"embeddings:{MODEL}", BUDGET))
    ids = []
    for n in range(FILES):
        storage.objects[f"uploads/f{n}.txt"] = f"file number {n} says hello".encode()
        row = conn.execute(
            "insert into ingest_files (bucket, path) values ('uploads', %s) returning id::text",
            (f"f{n}.txt",),
        ).fetchone()
        ids.append(row["id"])
    worker_env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": db,
        "SUPABASE_URL": httpserver.url_for("/").rstrip("/"),
        "SUPABASE_SERVICE_ROLE_KEY": KEY,
        "EMBEDDINGS_URL": httpserver.url_for("/v1"),
        "EMBEDDINGS_MODEL": MODEL,
    }
    with (
        serve("worker_pull", worker_env, tmp_path) as w1,
        serve("worker_pull", worker_env, tmp_path) as w2,
        serve(
            "cron_tick",
            {"CRON_SECRET": CRON, "JOB_WORKER_SECRET": SECRET, "WORKER_PULL_URL": w1.url},
            tmp_path,
        ) as c1,
        serve(
            "cron_tick",
            {"CRON_SECRET": CRON, "JOB_WORKER_SECRET": SECRET, "WORKER_PULL_URL": w2.url},
            tmp_path,
        ) as c2,
    ):
        summaries: list[dict[str, Any]] = []

        def tick(url: str) -> None:
            answer = httpx.post(
                url,
                json={"iterations": 8, "delay": 0, "concurrency": 4, "max_jobs": 3},
                headers={"x-cron-secret": CRON},
                timeout=120,
            )
            summaries.append(answer.json())

        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            ticks = [threading.Thread(target=tick, args=(c.url,)) for c in (c1, c2)]
            for t in ticks:
                t.start()
            for t in ticks:
                t.join()
            left = conn.execute(
                "select count(*) as n from ingest_files where id::text = any(%s)"
                " and status <> 'processed'",
                (ids,),
            ).fetchone()["n"]
            if left == 0:
                break
            time.sleep(2)
    files = conn.execute(
        "select status, count(*) as n from ingest_files where id::text = any(%s) group by 1",
        (ids,),
    ).fetchall()
    outcomes = {
        r["outcome"]: r["n"]
        for r in conn.execute(
            "select outcome, count(*) as n from job_attempts a join jobs j on j.id = a.job_id"
            " where j.type = 'ingest_file' group by 1"
        ).fetchall()
    }
    print(
        f"\nprovider: {len(provider.arrivals)} requests, {provider.refused} refused (429),"
        f" most in one minute {provider.most_in_a_minute()}; attempts {outcomes};"
        f" snoozed in ticks {sum(s.get('snoozed', 0) for s in summaries)}"
    )
    assert files == [{"status": "processed", "n": FILES}]
    assert provider.most_in_a_minute() <= BUDGET
    assert outcomes.get("retry", 0) == 0 and outcomes.get("failed", 0) == 0
    assert outcomes["done"] == FILES and outcomes.get("snoozed", 0) >= FILES - BUDGET
    assert provider.refused == 0
