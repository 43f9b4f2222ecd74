"""`jobqueue up`, the README's first command, end to end (issue 12): an embedded PostgreSQL in a
throwaway data folder, both functions served, the local scheduler, the bundled samples
uploaded through the Storage stand-in; every file processed (the corrupt one failed, with its
reason); SIGINT stops everything; a second start reuses the data folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow


def start(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["COLUMNS"] = "200"
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobqueue",
                "up",
                "--data-dir",
                str(data_dir),
                "--period",
                "0.5",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_for(log: Path, phrase: str, process: subprocess.Popen[bytes], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if phrase in text:
            return text
        assert process.poll() is None, text
        time.sleep(0.2)
    raise AssertionError(f"no {phrase!r} within {seconds} s:\n{log.read_text(errors='replace')}")


def descendants_and_postgres(pid: int, data_dir: Path) -> list[str]:
    """Processes this run may have left: its children, and postgres on its data folder."""
    left = []
    for process in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(data_dir) in cmdline or process.info["ppid"] == pid:
            left.append(f"{process.info['pid']}: {cmdline}")
    return left


def test_up_processes_every_sample_then_stops_cleanly_and_restarts_fast(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "up.log"
    first = start(data_dir, log)
    try:
        text = wait_for(log, "watching the queue", first, 120)
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(30)
    assert "embedded PostgreSQL" in text and "(created)" in text
    for name in ("hello.txt", "notes.md", "cities.csv", "settings.json", "status.html"):
        line = next(line for line in text.splitlines() if name in line)
        assert "processed" in line, line
    broken = next(line for line in text.splitlines() if "broken.json" in line)
    assert "failed" in broken and "not valid JSON" in text
    assert "stopped: every process this run started has ended" in log.read_text()
    assert first.returncode == 0
    time.sleep(0.5)
    assert descendants_and_postgres(first.pid, data_dir) == []

    second_log = tmp_path / "again.log"
    began = time.monotonic()
    second = start(data_dir, second_log)
    try:
        text = wait_for(second_log, "watching the queue", second, 60)
        took = time.monotonic() - began
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(30)
    assert "(reused)" in text and second.returncode == 0
    assert took < 30
    assert descendants_and_postgres(second.pid, data_dir) == []
