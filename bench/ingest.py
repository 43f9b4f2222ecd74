"""ingest_file: memory while ingesting a large file, and text extraction speed per format.

1. Peak RSS of the served worker_pull process (its kernel high-water mark, VmHWM) while it
   ingests one N MB text file (default 200) served by the local Storage stand-in: target
   < 100 MB, whatever N.
2. Extraction throughput (MB/s) for each format, through our extractor and through the same
   library called directly (our overhead as a ratio), on files made here.

    python bench/ingest.py [--mb 200]
"""

from __future__ import annotations

import argparse
import codecs
import io
import json
import random
import secrets
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import httpx
import psutil
import psycopg

from _common import machine, scratch_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for the file makers
from tests.support.files import docx, pdf

from jobqueue.handlers.ingest.detect import Detected, detect
from jobqueue.handlers.ingest.extract import Extracted, extract
from jobqueue.tools.local.storage_server import LocalStorage
from jobqueue.tools.serving import serve

WORDS = [
    "queue",
    "lease",
    "worker",
    "claim",
    "batch",
    "retry",
    "upload",
    "chunk",
    "embed",
    "status",
    "tick",
    "cron",
]


def text_file(path: Path, megabytes: int) -> None:
    rng = random.Random(7)
    line = " ".join(rng.choice(WORDS) for _ in range(12)) + "\n"
    block = line * (1024 * 1024 // len(line))
    with path.open("w") as f:
        for _ in range(megabytes):
            f.write(block)


def peak_rss(mb: int) -> None:
    key = secrets.token_urlsafe(16)
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "storage"
        (root / "uploads").mkdir(parents=True)
        text_file(root / "uploads" / "big.txt", mb)
        with LocalStorage(root, key) as storage:
            env = {
                "DATABASE_URL": dsn,
                "JOB_WORKER_SECRET": "w" * 20,
                "SUPABASE_URL": storage.url,
                "SUPABASE_SERVICE_ROLE_KEY": key,
            }
            with serve("worker_pull", env, Path(tmp)) as worker:
                httpx.post(worker.url, json={}, headers={"x-job-worker-secret": "w" * 20})
                [child] = psutil.Process(worker.pid).children()
                before = _hwm(child.pid)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(
                        "insert into ingest_files (bucket, path) values ('uploads', 'big.txt')"
                    )
                started = time.perf_counter()
                answer = httpx.post(
                    worker.url, json={}, headers={"x-job-worker-secret": "w" * 20}, timeout=1800
                ).json()
                took = time.perf_counter() - started
                peak = _hwm(child.pid)
        [job] = answer["jobs"]
        print(
            f"ingest of a {mb} MB text file: {job['status']} in {took:.1f} s "
            f"({mb / took:.1f} MB/s end to end, chunks and all)"
        )
        print(
            f"  worker_pull peak RSS: {peak / 1e6:.1f} MB (warm before the job: "
            f"{before / 1e6:.1f} MB); target < 100 MB: {'met' if peak < 100e6 else 'NOT met'}"
        )


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class _Plain(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []

    def handle_data(self, data: str) -> None:
        self.out.append(data)


def throughput() -> None:
    rng = random.Random(3)
    sentence = lambda: " ".join(rng.choice(WORDS) for _ in range(12))  # noqa: E731
    samples: dict[str, tuple[str, bytes, Callable[[bytes], object]]] = {
        "text (cp1252)": (
            "a.txt",
            ("\n".join(sentence() + " café" for _ in range(60000))).encode("cp1252"),
            lambda b: codecs.decode(b, "cp1252"),
        ),
        "markdown": (
            "a.md",
            ("\n".join("# " + sentence() for _ in range(60000))).encode(),
            lambda b: b.decode("utf-8"),
        ),
        "csv": (
            "a.csv",
            ("\n".join(",".join(sentence().split()) for _ in range(60000))).encode(),
            lambda b: b.decode("utf-8"),
        ),
        "json": (
            "a.json",
            json.dumps([sentence() for _ in range(60000)]).encode(),
            lambda b: json.loads(b),
        ),
        "html": (
            "a.html",
            (
                "<!doctype html><html><body>"
                + "".join(f"<p>{sentence()}</p>" for _ in range(40000))
                + "</body></html>"
            ).encode(),
            lambda b: _Plain().feed(b.decode()),
        ),
        "pdf": (
            "a.pdf",
            pdf([sentence() for _ in range(300)]),
            lambda b: [
                p.extract_text() for p in __import__("pypdf").PdfReader(io.BytesIO(b)).pages
            ],
        ),
        "docx": (
            "a.docx",
            docx([sentence() for _ in range(40000)]),
            lambda b: [
                e.text
                for e in ElementTree.fromstring(
                    zipfile.ZipFile(io.BytesIO(b)).read("word/document.xml")
                ).iter()
            ],
        ),
    }
    print(f"{'format':15} {'size':>8} {'ours MB/s':>10} {'library MB/s':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (name, content, direct) in samples.items():
            path = Path(tmp) / name
            path.write_bytes(content)
            detected = detect(path, name, None)
            ours = _best(partial(_ours, path, detected, name))
            theirs = _best(partial(direct, content))
            mb = len(content) / 1e6
            print(
                f"{kind:15} {mb:7.1f}M {mb / ours:10.1f} {mb / theirs:13.1f} {ours / theirs:5.2f}x"
            )


def _ours(path: Path, detected: Detected, name: str) -> str:
    return "".join(extract(path, detected, name, Extracted()))


def _best(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    print(machine())
    throughput()
    peak_rss(args.mb)


if __name__ == "__main__":
    main()
