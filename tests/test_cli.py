"""The operator CLI on the real test database, every command in both output modes, bad
arguments and unreachable databases included (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jobqueue import __version__
from jobqueue.tools.cli import main
from jobqueue.tools.serving import free_port, serve_pipeline
from tests.support.queue import Conn, claim, insert_job, job


def run(capsys: pytest.CaptureFixture[str], db: str, *args: str, code: int = 0) -> Any:
    """The command with --json: its exit status checked, its one JSON document returned."""
    status = main(["--database-url", db, "--json", *args])
    out, err = capsys.readouterr()
    assert status == code, out + err
    lines = [line for line in out.splitlines() if not line.startswith('{"severity"')]
    return json.loads("\n".join(lines)) if lines else None


def human(capsys: pytest.CaptureFixture[str], db: str, *args: str, code: int = 0) -> str:
    status = main(["--database-url", db, *args])
    out, err = capsys.readouterr()
    assert status == code, out + err
    return out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_migrate_dry_run_then_apply(capsys: pytest.CaptureFixture[str], empty_db: str) -> None:
    pending = run(capsys, empty_db, "migrate", "--dry-run")["pending"]
    assert len(pending) >= 3 and pending[0].endswith("create_supabase_roles")
    assert "create_job_queue" in human(capsys, empty_db, "migrate", "--dry-run")
    assert len(run(capsys, empty_db, "migrate")["applied"]) == len(pending)
    assert run(capsys, empty_db, "migrate") == {"applied": []}
    assert "nothing to apply" in human(capsys, empty_db, "migrate", "--dry-run")


def test_status_puts_problems_first_and_exits_1_on_a_problem(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    data = run(capsys, db, "status", code=1)
    assert data["problems"] and data["queued"] == 0
    out = human(capsys, db, "status", code=1)
    assert out.index("problem:") < out.index("queued")


def test_enqueue_with_every_option_then_list_and_show(
    capsys: pytest.CaptureFixture[str], db: str, conn: Conn
) -> None:
    [job_id] = run(
        capsys,
        db,
        "enqueue",
        "echo",
        "--input",
        '{"n": 1}',
        "--run-at",
        "2099-01-01T00:00:00+00:00",
        "--priority",
        "-3",
        "--max-attempts",
        "7",
        "--dedupe-key",
        "k1",
    )["enqueued"]
    row = job(conn, job_id)
    assert (row["priority"], row["max_attempts"], row["dedupe_key"]) == (-3, 7, "k1")
    assert row["run_at"].year == 2099 and row["input"] == {"n": 1}
    hit = run(capsys, db, "enqueue", "echo", "--dedupe-key", "k1")
    assert hit == {"enqueued": [], "existing": job_id}  # the live job holds the key
    more = run(capsys, db, "enqueue", "other", "--count", "3")["enqueued"]
    listed = run(capsys, db, "jobs", "list", "--type", "other", "--limit", "2")
    assert [r["id"] for r in listed] == sorted(more, reverse=True)[:2]
    assert run(capsys, db, "jobs", "list", "--status", "done") == []
    assert "other" in human(capsys, db, "jobs", "list")
    shown = run(capsys, db, "jobs", "show", str(job_id))
    assert shown["id"] == job_id and shown["attempt_history"] == []
    assert "attempts" in human(capsys, db, "jobs", "show", str(job_id))
    assert main(["--database-url", db, "jobs", "show", "999999"]) == 1
    assert "no job 999999" in capsys.readouterr().err


def test_retry_cancel_requeue(capsys: pytest.CaptureFixture[str], db: str, conn: Conn) -> None:
    a, b = (insert_job(conn, "echo") for _ in range(2))
    assert run(capsys, db, "cancel", str(a), str(b)) == [
        {"id": a, "changed": True},
        {"id": b, "changed": True},
    ]
    assert run(capsys, db, "retry", str(a)) == [{"id": a, "changed": True}]
    assert "changed" in human(capsys, db, "cancel", str(a))
    # b is cancelled, a is cancelled again: --all-failed finds neither.
    run(capsys, db, "retry", "--all-failed", code=1)
    failed = insert_job(conn, "kind_x", max_attempts=1)
    other = insert_job(conn, "kind_y", max_attempts=1)
    for row in claim(conn, limit=10, types=["kind_x", "kind_y"]):
        conn.execute("select fail_job(%s, %s, 'boom', true)", (row["id"], row["attempts"]))
    assert run(capsys, db, "retry", "--all-failed", "--type", "kind_x") == [
        {"id": failed, "changed": True}
    ]
    assert job(conn, other)["status"] == "failed"
    history = run(capsys, db, "jobs", "show", str(failed))["attempt_history"]
    assert history[0]["outcome"] == "failed" and history[0]["error"] == "boom"
    stuck = insert_job(conn, "kind_z")
    claim(conn, types=["kind_z"])
    assert run(capsys, db, "requeue", str(stuck)) == [{"id": stuck, "changed": True}]
    assert job(conn, stuck)["status"] == "queued"
    assert run(capsys, db, "requeue", str(stuck), code=1) == [{"id": stuck, "changed": False}]


def test_work_and_purge(capsys: pytest.CaptureFixture[str], db: str, conn: Conn) -> None:
    ids = [insert_job(conn, "echo") for _ in range(3)]
    assert run(capsys, db, "work")["by_status"] == {"done": 3}
    conn.execute("update jobs set finished_at = now() - interval '8 days' where id = %s", (ids[0],))
    assert run(capsys, db, "purge", "--older-than", "7d") == {"deleted": 1}
    assert "deleted 0 job(s)" in human(capsys, db, "purge", "--older-than", "7d")


def test_process_goes_through_cron_tick(
    capsys: pytest.CaptureFixture[str],
    db: str,
    conn: Conn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serve_pipeline(db, "w" * 20, "c" * 20, tmp_path) as (_, cron):
        monkeypatch.setenv("CRON_TICK_URL", cron.url)
        monkeypatch.setenv("CRON_SECRET", "c" * 20)
        ids = [insert_job(conn, "echo") for _ in range(4)]
        summary = run(capsys, db, "process", "2")
        assert summary["succeeded"] == 4 and summary["iterations"] == 2
        assert all(job(conn, i)["status"] == "done" for i in ids)
        monkeypatch.setenv("CRON_SECRET", "wrong-secret-value")
        assert run(capsys, db, "process", "1", code=1)["error"] == "unauthorized"
    monkeypatch.setenv("CRON_TICK_URL", f"http://127.0.0.1:{free_port()}/")
    assert main(["--database-url", db, "process", "1"]) == 3
    assert "cannot reach cron_tick" in capsys.readouterr().err


def test_ingest_uploads_to_storage_and_queues_the_job(
    capsys: pytest.CaptureFixture[str],
    db: str,
    conn: Conn,
    tmp_path: Path,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Supabase Storage's upload, as storage3 sends it: POST /storage/v1/object/<bucket>/<path>,
    the service role key, the bytes as multipart field `file`."""
    received: dict[str, Any] = {}

    def upload(request: Request) -> Response:
        received["auth"] = request.headers.get("Authorization")
        received["path"] = request.path
        received["bytes"] = request.files["file"].read()
        return Response(
            json.dumps({"Key": request.path.split("/object/")[1], "Id": "x"}),
            content_type="application/json",
        )

    httpserver.expect_request(
        "/storage/v1/object/docs/in/notes.txt", method="POST"
    ).respond_with_handler(upload)
    monkeypatch.setenv("SUPABASE_URL", httpserver.url_for("/"))
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-cli")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello from the cli\n")
    [row] = run(capsys, db, "ingest", str(notes), "--bucket", "docs", "--prefix", "in")
    assert received == {
        "auth": "Bearer service-key-cli",
        "path": "/storage/v1/object/docs/in/notes.txt",
        "bytes": b"hello from the cli\n",
    }
    file = conn.execute(
        "select bucket, path, status from ingest_files where id = %s", (row["file_id"],)
    ).fetchone()
    assert file == {"bucket": "docs", "path": "in/notes.txt", "status": "pending"}
    queued = conn.execute("select count(*) as n from jobs where type = 'ingest_file'").fetchone()
    assert queued == {"n": 1}
    [again] = run(capsys, db, "ingest", str(notes), "--no-upload")
    assert again["path"] == "notes.txt"
    monkeypatch.delenv("SUPABASE_URL")
    assert main(["--database-url", db, "ingest", str(notes)]) == 2
    assert "SUPABASE_URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["no-such-command"], "No such command"),
        (["enqueue", "echo", "--input", "{not json"], "not JSON"),
        (["enqueue", "echo", "--input", '{"a": "\\u0000"}'], "NUL"),
        (["work", "--max-jobs", "0"], "0 is not in the range 1<=x<=100"),
        (["purge", "--older-than", "soon"], "a number and a unit"),
        (["retry"], "give the ids of the jobs to retry, or --all-failed"),
        (["jobs", "show", "abc"], "is not a valid integer"),
    ],
)
def test_bad_arguments_are_one_clear_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], db: str, args: list[str], phrase: str
) -> None:
    assert main(["--database-url", db, *args]) == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err and "http" not in err.lower()
    assert len(err.strip().splitlines()) == 1


def test_an_unreachable_or_unmigrated_database_is_exit_3(
    capsys: pytest.CaptureFixture[str], empty_db: str
) -> None:
    assert (
        main(["--database-url", f"postgresql://postgres@127.0.0.1:{free_port()}/x", "status"]) == 3
    )
    assert "cannot reach the database" in capsys.readouterr().err
    assert main(["--database-url", empty_db, "status"]) == 3
    assert "jobqueue migrate" in capsys.readouterr().err


def test_the_installed_command_reads_env_local(db: str, tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text(f"# local\nDATABASE_URL='{db}'\n")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "jobqueue", "--json", "jobs", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.slow
def test_a_non_editable_install_finds_its_migrations(empty_db: str, tmp_path: Path) -> None:
    """`pip install .` (no source tree at run time): `jobqueue migrate` still applies them."""
    import site
    import sysconfig

    from jobqueue.tools.serving import ROOT

    venv = tmp_path / "venv"
    # Not --system-site-packages: from inside a virtual environment that would give the base
    # interpreter's packages, not this one's. This environment's site-packages are added as
    # plain paths instead (their .pth files, the editable install's among them, unread).
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    (Path(purelib) / "parent_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    python = str(venv / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import jobqueue; print(jobqueue.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(venv) in where, "the installed copy, not the source tree"
    done = subprocess.run(
        [python, "-m", "jobqueue", "--database-url", empty_db, "--json", "migrate"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["applied"]) >= 3


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:Pa55-hidden@db.example:notaport/postgres",
        "postgresql://user:Pa55%zz-hidden@db.example/postgres",
        "not a url Pa55-hidden",
        "host=db.example password=Pa55-hidden port=abc",
    ],
)
def test_a_malformed_database_url_is_exit_2_and_never_echoed(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert main(["--database-url", url, "status"]) == 2
    out, err = capsys.readouterr()
    assert "not a PostgreSQL connection string" in err
    assert "Pa55" not in out + err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["enqueue", "echo", "--priority", "3000000000"], "--priority"),
        (["enqueue", "echo", "--input", "[" * 50_000 + "]" * 50_000], "nested too deeply"),
        (["purge", "--older-than", "1000000000w"], "longer than any job"),
    ],
)
def test_odd_values_are_exit_2_with_a_clear_line(
    capsys: pytest.CaptureFixture[str], db: str, args: list[str], says: str
) -> None:
    assert main(["--database-url", db, *args]) == 2
    _, err = capsys.readouterr()
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_limits_set_list_pause_resume(capsys: pytest.CaptureFixture[str], db: str) -> None:
    run(
        capsys,
        db,
        "limits",
        "set",
        "embeddings:m",
        "--requests-per-minute",
        "3000",
        "--tokens-per-minute",
        "1000000",
        "--max-running",
        "8",
    )
    [row] = run(capsys, db, "limits", "list")
    assert (row["key"], row["requests_per_minute"], row["max_running"]) == ("embeddings:m", 3000, 8)
    paused = run(capsys, db, "limits", "pause", "embeddings:m", "--for", "10m")
    assert paused["paused_until"] is not None
    assert run(capsys, db, "limits", "list")[0]["paused_until"] is not None
    run(capsys, db, "limits", "resume", "embeddings:m")
    assert run(capsys, db, "limits", "list")[0]["paused_until"] is None
    assert main(["--database-url", db, "limits", "set", "k", "--max-running", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert run(capsys, db, "limits", "list")[0]["key"] == "embeddings:m"  # nothing changed


def test_search_embeds_the_question_and_prints_the_best_chunks(
    capsys: pytest.CaptureFixture[str],
    db: str,
    conn: Conn,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, vector in (("east", [1.0, 0.0]), ("north", [0.0, 1.0])):
        row = conn.execute(
            "insert into ingest_files (bucket, path, status) values ('uploads', %s, 'processed')"
            " returning id::text",
            (f"{name}.txt",),
        ).fetchone()
        conn.execute(
            "select add_file_chunks(%s, %s::jsonb)",
            (
                row["id"],
                json.dumps(
                    [
                        {
                            "index": 0,
                            "start": 0,
                            "content": f"{name} text",
                            "embedding": vector,
                            "model": "m",
                        }
                    ]
                ),
            ),
        )
    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_json(
        {"data": [{"index": 0, "embedding": [0.9, 0.1]}], "usage": {"total_tokens": 3}}
    )
    monkeypatch.setenv("EMBEDDINGS_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("EMBEDDINGS_MODEL", "m")
    found = run(capsys, db, "search", "which way is the sunrise?", "--count", "2")
    assert [f["file"] for f in found] == ["uploads/east.txt", "uploads/north.txt"]
    assert found[0]["similarity"] > found[1]["similarity"]
    queued = run(capsys, db, "reembed", "--model", "new-model")
    assert queued == {"queued": 2}


def test_work_runs_the_job_types_of_job_handler_modules_with_a_progress_bar(
    capsys: pytest.CaptureFixture[str], db: str, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_HANDLER_MODULES", "tests.handlers.extra")
    ids = [insert_job(conn, "double", {"n": n}) for n in range(5)]
    out = human(capsys, db, "work")
    assert "processing" in out and "5/5" in out and '{"severity"' not in out
    assert [job(conn, i)["output"] for i in ids] == [{"n": 2 * n} for n in range(5)]


def test_json_and_database_url_work_after_the_subcommand_too(
    capsys: pytest.CaptureFixture[str], db: str, conn: Conn
) -> None:
    insert_job(conn, "echo")
    assert main(["jobs", "list", "--json", "--database-url", db]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["type"] == "echo"
    assert main(["status", f"--database-url={db}", "--json"]) in (0, 1)
    assert "problems" in json.loads(capsys.readouterr().out)


def test_operator_messages_say_what_happened(
    capsys: pytest.CaptureFixture[str], db: str, conn: Conn
) -> None:
    assert main(["--database-url", db, "retry"]) == 2
    assert "give the ids of the jobs to retry, or --all-failed" in capsys.readouterr().err
    assert main(["--database-url", db, "cancel", "99999"]) == 1
    assert "not found: 99999" in capsys.readouterr().err
    first = run(capsys, db, "enqueue", "echo", "--dedupe-key", "k")["enqueued"]
    again = run(capsys, db, "enqueue", "echo", "--dedupe-key", "k")
    assert again == {"enqueued": [], "existing": first[0]}
    assert "already holds dedupe key" in human(capsys, db, "enqueue", "echo", "--dedupe-key", "k")
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Usage: ") and "Commands:" in out and err == ""
    old = insert_job(conn, "echo", status="done", finished_at="2020-01-01")
    assert run(capsys, db, "purge", "--older-than", "7d", "--dry-run") == {"would_delete": 1}
    assert job(conn, old)["status"] == "done"  # still there
    # --json times are RFC 3339, as a script parses them.
    [row] = [r for r in run(capsys, db, "jobs", "list") if r["id"] == old]
    from datetime import datetime

    assert "T" in row["updated_at"] and datetime.fromisoformat(row["updated_at"]).tzinfo


def test_enqueue_count_and_ingest_show_their_progress(
    capsys: pytest.CaptureFixture[str], db: str, conn: Conn, tmp_path: Path
) -> None:
    """Long commands say how far they are (issue 17); --json stays one document."""
    out = human(capsys, db, "enqueue", "echo", "--count", "25000")
    assert "enqueueing" in out and "25000/25000" in out and "enqueued 25000 echo" in out
    row = conn.execute("select count(*) as n from jobs where type = 'echo'").fetchone()
    assert row is not None and row["n"] == 25000
    names = [tmp_path / f"f{i}.txt" for i in range(3)]
    for path in names:
        path.write_text("x")
    out = human(capsys, db, "ingest", "--no-upload", *map(str, names))
    assert "registering" in out and "3/3" in out
    registered = run(capsys, db, "ingest", "--no-upload", str(names[0]))
    assert [r["path"] for r in registered] == ["f0.txt"]
    assert run(capsys, db, "enqueue", "echo", "--count", "3")["enqueued"]
