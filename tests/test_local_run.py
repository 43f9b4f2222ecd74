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
    env = dict(os.environ)
    # A hosted project's URL in the environment, as the runbook has users keep it: ignored.
    env["DATABASE_URL"] = "postgresql://nobody:x@db.invalid:5432/hosted"
    env["COLUMNS"] = "200"
    # As in a container, CI or an ssh session: no runtime folder (pgserver's platformdirs
    # used to print a RuntimeDirWarning before anything else).
    env.pop("XDG_RUNTIME_DIR", None)
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
            # As a shell starts a background job (`jobqueue up &`, a CI step): SIGINT ignored.
            # The run must still stop on it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
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


# A clean stop takes a second or two (PostgreSQL's shutdown checkpoint included).
STOP_SECONDS = 30


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
        first.wait(STOP_SECONDS)
    assert "embedded PostgreSQL" in text and "(created)" in text
    assert "Warning" not in text, text
    from importlib.resources import files

    kinds = {
        "hello.txt": "text/plain",
        "notes.md": "text/markdown",
        "cities.csv": "text/csv",
        "settings.json": "application/json",
        "status.html": "text/html",
    }
    for name, kind in kinds.items():
        line = next(line for line in text.splitlines() if name in line)
        size = len(files("jobqueue.tools").joinpath(f"samples/{name}").read_bytes())
        assert "processed" in line, line
        # The details come from what ingest_file wrote: its type, size and characters.
        assert f"{kind}, {size} bytes, " in line and "None" not in line, line
        assert int(line.split(" bytes, ")[1].split(" characters")[0]) > 0, line
    broken = next(line for line in text.splitlines() if "broken.json" in line)
    assert "failed" in broken and "not valid JSON" in text and "PermanentJobError" not in text
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
        second.send_signal(signal.SIGTERM)  # as a supervisor stops it
        second.wait(STOP_SECONDS)
    assert "(reused)" in text and second.returncode == 0
    assert took < 30
    assert descendants_and_postgres(second.pid, data_dir) == []


def test_up_never_writes_where_the_environment_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DATABASE_URL and .env.local name a hosted project: `up` ignores them, and a non-local
    --database-url needs --yes; nothing is contacted before that answer."""
    from jobqueue.tools.cli import main

    hosted = (
        "postgresql://postgres.ref:Pa55-hidden@aws-0-us-west-1.pooler.supabase.com:6543/postgres"
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env.local").write_text(f"DATABASE_URL='{hosted}'\n")
    assert main(["--database-url", hosted, "up", "--data-dir", str(tmp_path / "d")]) == 2
    _, err = capsys.readouterr()
    assert "pooler.supabase.com" in err and "--yes" in err and "Pa55" not in err
    from jobqueue.tools.local.database import describe, is_local

    assert is_local("postgresql://u@127.0.0.1:5432/x") and is_local("host=/tmp dbname=x")
    assert not is_local(hosted)
    assert describe(hosted) == "database postgres on aws-0-us-west-1.pooler.supabase.com:6543"


def test_each_data_folder_has_its_own_embedded_server_lock(tmp_path: Path) -> None:
    """pgserver locks every embedded server of a user with one file, held while one starts
    or stops: two runs of `jobqueue up` in two projects (or two test runs) waited on each
    other. The lock is now the data folder's own, the same from run to run of one folder."""
    probe = (
        "import sys; from pathlib import Path\n"
        "from jobqueue.tools.local.database import _runtime_folder_of\n"
        "with _runtime_folder_of(Path(sys.argv[1])):\n"
        "    import pgserver.postgres_server as s\n"
        "print(s.PostgresServer.lock_path)\n"
    )

    def lock_of(folder: Path) -> str:
        env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
        done = subprocess.run(
            [sys.executable, "-c", probe, str(folder)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert "Warning" not in done.stderr, done.stderr
        return done.stdout.strip()

    first, second = tmp_path / "one", tmp_path / "two"
    assert lock_of(first) == lock_of(first) != lock_of(second)
    assert len(lock_of(first)) < 80  # short: the folder may hold the server's socket
