"""One upload must not take a worker down (issue 16, items 7 and 8).

Each bomb is generated here (deterministic content, no binary fixtures), uploaded to the Storage
stand-in and processed by a served worker_pull. Each must end ``failed`` at its first attempt
with a reason a person can act on, while the worker process (measured from outside, the whole
process tree) grows by less than ``MEMORY_BOUND``; and the worker still serves afterwards.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from pytest_httpserver import HTTPServer

from jobqueue.handlers.ingest.chunks import chunked
from jobqueue.tools.serving import Served, serve
from tests.support.files import docx_of, pdf_with_content
from tests.support.ingest import HEADERS, KEY, SECRET, Storage, chunks, file_row, upload
from tests.support.queue import Conn

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
MEMORY_BOUND = 100 * MIB


def _repeat(part: bytes, times: int, per_block: int = 100_000) -> Iterator[bytes]:
    block = part * per_block
    for _ in range(times // per_block):
        yield block
    yield part * (times % per_block)


BOMBS: dict[str, tuple[Callable[[], bytes], str]] = {
    # 20 M empty runs: ElementTree kept every one of them.
    "docx of 20 M elements": (
        lambda: docx_of(_repeat(b"<w:r/>", 20_000_000)),
        "more than 5,000,000 XML elements",
    ),
    # One paragraph of 512 MiB: declared far past the expansion cap.
    "docx with one 512 MiB paragraph": (
        lambda: docx_of(
            [b"<w:p><w:r><w:t>", *_repeat(b"a" * 1024, 512 * 1024, 4096), b"</w:t></w:r></w:p>"]
        ),
        "INGEST_MAX_EXPANDED_BYTES",
    ),
    # 1 M levels deep.
    "docx nested 1 M deep": (
        lambda: docx_of([b"<w:x>" * 1_000_000, b"</w:x>" * 1_000_000]),
        "more than 256 levels deep",
    ),
    # Under the expansion cap, but 200 M characters of text.
    "docx expanding to 200 M characters": (
        lambda: docx_of(
            [b"<w:p><w:r><w:t>", *_repeat(b"word " * 200, 200_000, 4096), b"</w:t></w:r></w:p>"]
        ),
        "INGEST_MAX_TEXT_CHARS",
    ),
    # 50 MB of [] values: json.loads built 12 M lists.
    "json of 12 M empty arrays": (
        lambda: b"[" + b"[]," * 12_000_000 + b"[]]",
        "more than 5,000,000 JSON values",
    ),
    "json nested 1 M deep": (lambda: b"[" * 1_000_000 + b"]" * 1_000_000, "levels deep"),
    "pdf whose content inflates to 300 MiB": (
        lambda: pdf_with_content(b"BT /F1 12 Tf 72 700 Td (A) Tj ET\n" + b" " * (300 * MIB)),
        "LimitReachedError",
    ),
    "html comment that never ends": (
        lambda: b"<html><body><p>hi</p><!--" + b"x" * (40 * MIB),
        "never ends",
    ),
}


@pytest.fixture
def served_worker(db: str, httpserver: HTTPServer, tmp_path: Path) -> Iterator[Served]:
    env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": db,
        "SUPABASE_URL": httpserver.url_for("/").rstrip("/"),
        "SUPABASE_SERVICE_ROLE_KEY": KEY,
    }
    with serve("worker_pull", env, tmp_path) as served:
        yield served


def _tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def _process_one(served: Served) -> tuple[dict[str, Any], int, float]:
    """One worker_pull call: (its job, peak RSS growth, seconds)."""
    before = _tree_rss(served.pid)
    peak = before
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(served.pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        answer = httpx.post(served.url, json={"max_jobs": 1}, headers=HEADERS, timeout=300)
    finally:
        done.set()
        watcher.join()
    assert answer.status_code == 200, answer.text
    [reported] = answer.json()["jobs"]
    return reported, peak - before, time.monotonic() - started


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_each_bomb_fails_for_good_within_bounded_memory(
    served_worker: Served, conn: Conn, storage: Storage, httpserver: HTTPServer, bomb: str
) -> None:
    httpserver.expect_request(re.compile("^/storage/v1/object/.*")).respond_with_handler(storage)
    # Warm the worker (imports, connections) so the figure is the bomb's alone.
    upload(conn, storage, "warm.txt", b"warm up")
    warm, _, _ = _process_one(served_worker)
    assert warm["status"] == "done", warm
    make, reason = BOMBS[bomb]
    content = make()
    file_id = upload(conn, storage, f"bomb-{bomb.replace(' ', '-')}", content)
    reported, grew, seconds = _process_one(served_worker)
    print(f"\n{bomb}: {len(content):,} bytes, worker grew {grew / MIB:.0f} MiB, {seconds:.1f} s")
    assert reported["status"] == "failed" and reported["attempts"] == 1, reported
    row = file_row(conn, file_id)
    assert row["status"] == "failed" and reason in row["error"], row["error"]
    assert chunks(conn, file_id) == []
    assert grew < MEMORY_BOUND, f"{bomb}: the worker grew by {grew / MIB:.0f} MiB"
    assert httpx.get(served_worker.url, timeout=5).status_code == 200


def test_the_chunker_gives_the_same_chunks_for_one_huge_piece_as_for_many() -> None:
    """The linear chunker (an offset into the buffer, compacted once per piece) against the
    text itself: every chunk is the text at its start, consecutive chunks overlap, and one
    16 MiB piece chunks exactly as 1 MiB pieces do. Its speed is bench/chunker.py's figure."""
    text = "".join(f"word{i} " for i in range(2_500_000))[: 16 * MIB]
    whole = list(chunked([text], 1500, 200))
    pieces = list(chunked([text[i : i + MIB] for i in range(0, len(text), MIB)], 1500, 200))
    assert [(c.start, c.content) for c in whole] == [(c.start, c.content) for c in pieces]
    for chunk, following in itertools.pairwise(whole):
        assert text[chunk.start : chunk.start + len(chunk.content)] == chunk.content
        assert chunk.start < following.start < chunk.start + len(chunk.content)
    assert whole[-1].start + len(whole[-1].content) == len(text)
