"""Refused requests close their connection for real, and no body makes the server read more than
its limit (issue 16, items 3 to 5), on worker_pull served by functions-framework's gunicorn.

Each case is tried hundreds of times, on raw sockets (the bytes an attacker chooses), on one
kept-alive httpx client and with curl reusing its connection: an answer lost, a desync or a
request parsed out of a refused body fails the test. Queued echo jobs are the smuggling probe:
the refused bodies carry authorised worker_pull calls, so any of them executed would run a job.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from jobqueue.tools.serving import Served, serve
from tests.support.functions import load_module
from tests.support.queue import Conn, insert_job

pytestmark = pytest.mark.slow

SECRET = "framing-secret"
TRIES = 200

SMUGGLED_POST = (
    b"POST / HTTP/1.1\r\nHost: x\r\nx-job-worker-secret: " + SECRET.encode() + b"\r\n"
    b'Content-Type: application/json\r\nContent-Length: 14\r\n\r\n{"max_jobs":5}'
)
SMUGGLED_GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLED = SMUGGLED_POST + SMUGGLED_GET


def _refusal(head: str, body: bytes) -> bytes:
    return head.format(length=len(body)).encode() + body


# Each refusal carries the smuggled requests inside its declared body, and more after it.
REFUSALS = {
    "401 wrong secret": _refusal(
        "POST / HTTP/1.1\r\nHost: x\r\nx-job-worker-secret: wrong\r\n"
        "Content-Length: {length}\r\n\r\n",
        SMUGGLED * 3,
    )
    + SMUGGLED,
    "401 no secret, chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(SMUGGLED):x}\r\n".encode()
        + SMUGGLED
        + b"\r\n0\r\n\r\n"
        + SMUGGLED
    ),
    "405 PUT": _refusal("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n", SMUGGLED)
    + SMUGGLED,
    "413 declared": (
        b"POST / HTTP/1.1\r\nHost: x\r\nx-job-worker-secret: " + SECRET.encode() + b"\r\n"
        b"Content-Length: 5000000\r\n\r\n" + SMUGGLED * 2
    ),
    "GET with a body": _refusal(
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n", SMUGGLED * 2
    )
    + SMUGGLED,
}


@pytest.fixture
def worker(db: str, tmp_path: Path) -> Iterator[Served]:
    with serve("worker_pull", {"JOB_WORKER_SECRET": SECRET, "DATABASE_URL": db}, tmp_path) as w:
        yield w


def _port(served: Served) -> int:
    return int(served.url.rsplit(":", 1)[1])


def _exchange(
    port: int, data: bytes, seconds: float = 10, half_close: bool = True
) -> tuple[bytes, bool]:
    """Sends `data`, half-closes (or keeps the connection open, as an attacker would), reads
    until the server closes: (all it sent, closed)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(seconds)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        except ConnectionResetError:
            return received, True
        return received, True


def _statuses(received: bytes) -> list[bytes]:
    return [line.split(b" ")[1] for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def _queued_untouched(conn: Conn, ids: list[int]) -> None:
    rows = conn.execute("select status, attempts from jobs where id = any(%s)", (ids,)).fetchall()
    assert [(r["status"], r["attempts"]) for r in rows] == [("queued", 0)] * len(ids)


@pytest.mark.parametrize("half_close", [True, False], ids=["half-closed", "kept open"])
@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_answers_once_and_closes_on_raw_sockets(
    worker: Served, conn: Conn, case: str, half_close: bool
) -> None:
    probes = [insert_job(conn, "echo", {"probe": i}) for i in range(5)]
    expected = {
        "401 wrong secret": b"401",
        "401 no secret, chunked": b"401",
        "405 PUT": b"405",
        "413 declared": b"413",
        "GET with a body": b"200",
    }[case]
    desyncs = []
    for attempt in range(TRIES):
        received, closed = _exchange(_port(worker), REFUSALS[case], 5, half_close)
        if _statuses(received) != [expected] or not closed:
            desyncs.append((attempt, _statuses(received), closed))
    assert desyncs == []
    _queued_untouched(conn, probes)
    assert b"Connection: close" in _exchange(_port(worker), REFUSALS[case])[0]


def test_refusals_and_follow_ups_on_one_kept_alive_httpx_client(worker: Served, conn: Conn) -> None:
    probes = [insert_job(conn, "echo", {"probe": i}, run_at="2999-01-01") for i in range(3)]
    lost, wrong = 0, []
    with httpx.Client(timeout=10) as http:
        for attempt in range(TRIES * 2):
            try:
                refused = http.post(
                    worker.url, content=SMUGGLED * 4, headers={"x-job-worker-secret": "no"}
                )
                health = http.get(worker.url)
                served = http.post(worker.url, json={}, headers={"x-job-worker-secret": SECRET})
            except httpx.HTTPError:
                lost += 1
                continue
            got = (refused.status_code, health.status_code, served.status_code)
            if got != (401, 200, 200) or health.json()["status"] != "ok":
                wrong.append((attempt, got))
    assert (lost, wrong) == (0, [])
    _queued_untouched(conn, probes)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_refusals_and_follow_ups_with_curl_reusing_its_connection(
    worker: Served, conn: Conn, tmp_path: Path
) -> None:
    probes = [insert_job(conn, "echo", {"probe": i}, run_at="2999-01-01") for i in range(3)]
    smuggle = tmp_path / "smuggle.bin"
    smuggle.write_bytes(SMUGGLED * 4)
    pairs = 50
    command = ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}\\n"]
    for _ in range(pairs):
        command += [
            "-X",
            "POST",
            "-H",
            "x-job-worker-secret: no",
            "--data-binary",
            f"@{smuggle}",
            worker.url,
            "--next",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}\\n",
            worker.url,
            "--next",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}\\n",
        ]
    command = command[: -len(["--next", "--output", "/dev/null", "--write-out", "%{http_code}\\n"])]
    for _ in range(4):  # 4 x 50 pairs
        codes = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout.split()
        assert codes == ["401", "200"] * pairs
    _queued_untouched(conn, probes)


def _tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_huge_body_on_a_health_get_is_never_read_whole(worker: Served, framing: str) -> None:
    """256 MiB offered with a GET: answered, and the server grows by less than 32 MiB."""
    before = _tree_rss(worker.pid)
    peak = before
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(worker.pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    size = 256 * 1024 * 1024
    block = b"x" * (1024 * 1024)
    head = (
        f"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
        if framing == "content-length"
        else "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = block if framing == "content-length" else b"100000\r\n" + block + b"\r\n"
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", _port(worker))) as sock:
            sock.settimeout(10)
            sock.sendall(head)
            try:
                for _ in range(256):
                    sock.sendall(piece)
            except OSError:
                pass  # the server answered and closed: what we want
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except OSError:
                pass
    finally:
        stop.set()
        watcher.join()
    assert _statuses(received) == [b"200"]
    assert peak - before < 32 * 1024 * 1024, f"grew by {(peak - before) / 2**20:.0f} MiB"
    assert httpx.get(worker.url, timeout=5).status_code == 200


def test_a_body_cut_short_of_its_content_length_is_refused(worker: Served, conn: Conn) -> None:
    probes = [insert_job(conn, "echo", {"probe": i}) for i in range(5)]
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nx-job-worker-secret: " + SECRET.encode() + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"max_jobs":5}'
    )
    received, closed = _exchange(_port(worker), request)
    assert _statuses(received) == [b"400"] and closed
    assert b'"bad_request"' in received and b"Content-Length" in received
    _queued_untouched(conn, probes)


@pytest.mark.parametrize(
    "chunks",
    [b"ZZ\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"5\r\n{}", b"2\r\n{}\r\n"],
    ids=["bad size", "missing terminator", "no more data", "no last chunk"],
)
def test_broken_chunked_framing_with_the_secret_is_a_400_json(
    worker: Served, conn: Conn, chunks: bytes
) -> None:
    probes = [insert_job(conn, "echo", {"probe": 0})]
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nx-job-worker-secret: " + SECRET.encode() + b"\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks
    )
    received, closed = _exchange(_port(worker), request)
    assert _statuses(received) == [b"400"] and closed, received
    assert b"application/json" in received and b"text/html" not in received
    _queued_untouched(conn, probes)


@pytest.mark.parametrize("function", ["worker_pull", "cron_tick"])
def test_a_lone_surrogate_in_the_secret_header_is_a_401_on_lambda(
    db: str, monkeypatch: pytest.MonkeyPatch, function: str
) -> None:
    env = {
        "JOB_WORKER_SECRET": SECRET,
        "DATABASE_URL": db,
        "CRON_SECRET": "cron",
        "WORKER_PULL_URL": "http://127.0.0.1:9/",
    }
    module: Any = load_module(function, env, monkeypatch)
    header = "x-job-worker-secret" if function == "worker_pull" else "x-cron-secret"
    event = {
        "version": "2.0",
        "requestContext": {"http": {"method": "POST"}},
        "headers": {header: "\ud800bad"},
        "body": "{}",
    }
    answer = module.lambda_handler(event, None)
    assert answer["statusCode"] == 401
