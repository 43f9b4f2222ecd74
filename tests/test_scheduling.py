"""Scheduling from the database: configuration lookup, the status view, and (with a real
pg_cron) the whole chain pg_cron -> trigger_job_worker() -> cron_tick -> worker_pull -> done."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobqueue.tools.migrate import apply_migrations
from jobqueue.tools.serving import ROOT, Served, serve_pipeline
from tests.support import pg, pg_cron
from tests.support.queue import Conn, insert_job
from tests.support.scripts import run_script

CRON_SECRET = "cron-secret-from-test"
WORKER_SECRET = "worker-secret-from-test"


def status(conn: Conn) -> dict[str, Any]:
    rows = conn.execute("select * from job_processing_status").fetchall()
    assert len(rows) == 1
    return rows[0]


def wait_for(predicate: Any, seconds: float, step: float = 0.05) -> float:
    """Polls until predicate() is true; returns the seconds it took, fails after `seconds`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not true within {seconds} s")
        time.sleep(step)
    return time.monotonic() - started


# --- without pg_cron: every database ------------------------------------------------------


def test_status_view_without_pg_cron(conn: Conn) -> None:
    insert_job(conn)
    conn.execute("update jobs set created_at = now() - interval '90 seconds'")
    insert_job(conn)
    row = status(conn)
    assert (row["cron_schedule"], row["cron_active"], row["last_run_status"]) == (None, False, None)
    assert (row["queued"], row["running"], row["done"], row["failed"]) == (2, 0, 0, 0)
    assert row["oldest_queued_age"].total_seconds() >= 89
    assert row["worker_configured"] is False


def test_trigger_without_configuration_says_what_to_do(conn: Conn) -> None:
    for call in ("select trigger_job_worker()", "select manual_process_jobs(3)"):
        with pytest.raises(psycopg.errors.RaiseException) as error:
            conn.execute(call)
        assert "not configured" in str(error.value)
        assert "setup-cron-config.sh" in (error.value.diag.message_hint or "")


def without_http_client(conn: Conn) -> None:
    """The migrations enable pg_net wherever the server has it: take it away."""
    conn.execute("drop extension if exists pg_net cascade")


def test_trigger_without_an_http_client_says_what_to_do(conn: Conn) -> None:
    without_http_client(conn)
    conn.execute("select set_job_worker_config('cron_tick_url', 'http://127.0.0.1:9/')")
    conn.execute("select set_job_worker_config('cron_secret', 'x')")
    with pytest.raises(psycopg.errors.RaiseException) as error:
        conn.execute("select trigger_job_worker()")
    assert "pg_net" in str(error.value) and "create extension" in error.value.diag.message_hint


def test_manual_process_jobs_checks_n(conn: Conn) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match="from 1 to 100"):
        conn.execute("select manual_process_jobs(0)")


def test_settings_fallback_then_vault_first(conn: Conn) -> None:
    conn.execute("select set_job_worker_config('cron_tick_url', 'http://from-settings/')")
    conn.execute("select set_job_worker_config('cron_secret', 'settings-secret')")
    lookup = (
        "select job_worker_config('cron_tick_url') as url, job_worker_config('cron_secret') as s"
    )
    assert conn.execute(lookup).fetchone() == {
        "url": "http://from-settings/",
        "s": "settings-secret",
    }
    assert conn.execute(
        "select setting from pg_db_role_setting, unnest(setconfig) setting"
        " where setting like 'app.settings.cron_tick_url=%'"
    ).fetchone()
    row = status(conn)
    assert row["worker_configured"] is True and row["cron_secret_source"] == "settings"
    assert "settings-secret" not in str(row)

    pg_cron.enable_vault(conn.info.dsn)
    assert (
        conn.execute(
            "select set_job_worker_config('cron_tick_url', 'http://from-vault/')"
        ).fetchone()["set_job_worker_config"]
        == "vault"
    )
    # Each value on its own: the URL now comes from Vault, the secret still from settings.
    assert conn.execute(lookup).fetchone() == {"url": "http://from-vault/", "s": "settings-secret"}
    conn.execute("select set_job_worker_config('cron_tick_url', 'http://from-vault-2/')")
    assert conn.execute("select count(*) as n from vault.secrets").fetchone()["n"] == 1
    assert conn.execute(lookup).fetchone()["url"] == "http://from-vault-2/"
    sources = status(conn)
    assert (sources["cron_tick_url_source"], sources["cron_secret_source"]) == ("vault", "settings")


def test_kick_needs_pg_net(conn: Conn) -> None:
    without_http_client(conn)
    with pytest.raises(psycopg.errors.RaiseException, match="pg_net"):
        conn.execute("select set_job_kick(true)")


def test_prune_removes_old_finished_jobs_only(conn: Conn) -> None:
    old = insert_job(conn)
    conn.execute("select * from claim_jobs('w', 1, 60, null)")
    conn.execute("select complete_job(%s, 1)", (old,))
    conn.execute("update jobs set finished_at = now() - interval '8 days' where id = %s", (old,))
    recent = insert_job(conn)
    result = conn.execute("select prune_job_history() as r").fetchone()["r"]
    assert result["jobs"] == 1
    assert [r["id"] for r in conn.execute("select id from jobs").fetchall()] == [recent]
    assert conn.execute("select count(*) as n from job_attempts").fetchone()["n"] == 0


# --- with a real pg_cron ---------------------------------------------------------------------


@pytest.fixture
def functions(cron_db: str, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    with serve_pipeline(cron_db, WORKER_SECRET, CRON_SECRET, tmp_path) as pair:
        yield pair


@pytest.fixture
def configured(cron_db: str, functions: tuple[Served, Served]) -> str:
    """The pg_cron database, served functions, and their configuration stored by the script."""
    done = setup_config(cron_db, functions[1].url)
    assert done.returncode == 0, done.stderr
    return cron_db


def setup_config(cron_db: str, cron_url: str) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": cron_db, "CRON_TICK_URL": cron_url, "CRON_SECRET": CRON_SECRET}
    return run_script("setup-cron-config.sh", env)


def test_migrations_schedule_the_worker_with_pg_cron(cron_db: str) -> None:
    with pg.connect(cron_db) as conn:
        jobs = conn.execute(
            "select jobname, schedule, command, active from cron.job order by jobname"
        ).fetchall()
        row = status(conn)
    assert {
        "jobname": "process-queued-jobs",
        "schedule": "* * * * *",
        "command": "SELECT trigger_job_worker();",
        "active": True,
    } in jobs
    assert "prune-job-history" in [j["jobname"] for j in jobs]
    assert (row["cron_schedule"], row["cron_active"]) == ("* * * * *", True)
    apply_migrations(cron_db)  # idempotent with pg_cron too
    with pg.connect(cron_db) as conn:
        count = conn.execute(
            "select count(*) as n from cron.job where jobname = 'process-queued-jobs'"
        ).fetchone()["n"]
    assert count == 1


def test_psql_applies_the_migrations_twice_with_pg_cron(cron_db: str) -> None:
    dsn = cron_db  # under the fixture's lock, emptied again for psql
    pg_cron.reset(dsn)
    pg.psql_apply(dsn)
    pg.psql_apply(dsn)
    with pg.connect(dsn) as conn:
        names = conn.execute("select jobname from cron.job order by jobname").fetchall()
    assert [n["jobname"] for n in names] == ["process-queued-jobs", "prune-job-history"]


def test_setup_script_stores_configuration_and_never_prints_the_secret(
    cron_db: str, functions: tuple[Served, Served]
) -> None:
    _, cron = functions
    done = setup_config(cron_db, cron.url)
    assert done.returncode == 0, done.stderr
    assert CRON_SECRET not in done.stdout + done.stderr
    assert "cron_secret stored in vault" in done.stdout and "worker_configured" in done.stdout
    again = setup_config(cron_db, cron.url)
    assert again.returncode == 0, again.stderr
    missing = run_script("setup-cron-config.sh", {"DATABASE_URL": cron_db})
    assert missing.returncode == 2 and "CRON_TICK_URL" in missing.stderr


def test_manual_process_jobs_drains_through_the_served_functions(configured: str) -> None:
    with pg.connect(configured) as conn:
        conn.execute("select cron.unschedule('process-queued-jobs')")
        ids = [insert_job(conn, "echo", {"n": n}) for n in range(3)]
        conn.execute("update job_worker_settings set delay_ms = 0")
        request_id = conn.execute("select manual_process_jobs(3) as id").fetchone()["id"]
        wait_for(
            lambda: (
                conn.execute(
                    "select count(*) as n from jobs where id = any(%s) and status = 'done'", (ids,)
                ).fetchone()["n"]
                == 3
            ),
            20,
        )
        wait_for(
            lambda: (
                conn.execute(
                    "select count(*) as n from net._http_response where id = %s", (request_id,)
                ).fetchone()["n"]
                == 1
            ),
            20,
        )
        response = conn.execute(
            "select status_code from net._http_response where id = %s", (request_id,)
        ).fetchone()
    assert response == {"status_code": 200}


def test_pg_cron_alone_takes_a_queued_job_to_done(configured: str) -> None:
    with pg.connect(configured) as conn:
        job_id = insert_job(conn, "echo", {"from": "pg_cron"})
        # pg_cron 1.4 fires at the start of each minute: at most about 60 s from now.
        wait_for(
            lambda: (
                conn.execute("select status from jobs where id = %s", (job_id,)).fetchone()[
                    "status"
                ]
                == "done"
            ),
            90,
            step=0.5,
        )
        wait_for(lambda: status(conn)["last_run_status"] == "succeeded", 10)
        wait_for(lambda: status(conn)["last_tick_summary"] is not None, 30)
        row = status(conn)
    assert row["last_run_at"] is not None and row["done"] == 1 and row["queued"] == 0
    assert row["cron_schedule"] == "* * * * *" and row["worker_configured"] is True
    # The scheduled call recorded what it needs to find its answer: pg_net's response.
    assert row["last_tick_status"] == 200 and row["last_tick_summary"]["succeeded"] == 1
    assert row["problems"] == [], row["problems"]


def test_a_wrong_stored_secret_shows_in_problems_within_one_schedule_period(
    cron_db: str, functions: tuple[Served, Served]
) -> None:
    """pg_cron reports the run `succeeded`; the refusal is in pg_net's response, and the status
    view finds it there."""
    env = {"DATABASE_URL": cron_db, "CRON_TICK_URL": functions[1].url, "CRON_SECRET": "wrong-one"}
    assert run_script("setup-cron-config.sh", env).returncode == 0
    with pg.connect(cron_db) as conn:
        wait_for(lambda: status(conn)["last_tick_status"] == 401, 90, step=0.5)
        row = status(conn)
    assert row["last_run_status"] == "succeeded"
    assert any("HTTP 401" in p and "CRON_SECRET" in p for p in row["problems"]), row["problems"]
    assert "wrong-one" not in str(row)


def test_kick_starts_a_new_job_without_waiting_for_the_schedule(configured: str) -> None:
    with pg.connect(configured) as conn:
        conn.execute("select cron.unschedule('process-queued-jobs')")
        conn.execute("select set_job_kick(true, 0)")
        job_id = insert_job(conn, "echo", {"kicked": True})
        took = wait_for(
            lambda: (
                conn.execute("select status from jobs where id = %s", (job_id,)).fetchone()[
                    "status"
                ]
                == "done"
            ),
            10,
        )
        assert status(conn)["kick_enabled"] is True
    assert took < 10


def test_schedule_comes_from_settings_and_a_bad_one_says_why(cron_db: str) -> None:
    with pg.connect(cron_db) as conn:
        conn.execute("update job_worker_settings set schedule = '*/5 * * * *'")
        conn.execute("select schedule_job_worker()")
        assert status(conn)["cron_schedule"] == "*/5 * * * *"
        version = conn.execute(
            "select extversion from pg_extension where extname = 'pg_cron'"
        ).fetchone()["extversion"]
        conn.execute("update job_worker_settings set schedule = '10 seconds'")
        major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
        if (major, minor) >= (1, 5):
            conn.execute("select schedule_job_worker()")
            assert status(conn)["cron_schedule"] == "10 seconds"
        else:
            with pytest.raises(psycopg.errors.RaiseException) as error:
                conn.execute("select schedule_job_worker()")
            assert "10 seconds" in str(error.value)
            assert "pg_cron 1.5" in (error.value.diag.message_hint or "")
            assert status(conn)["cron_schedule"] == "*/5 * * * *"


def test_setup_script_reads_database_url_from_env_local(
    configured: str, functions: tuple[Served, Served], tmp_path: Path
) -> None:
    """The script reads .env.local at the root of the project it sits in: run from a copy of
    the scripts, so this checkout's own .env.local (and a second test run on the same
    checkout) is never touched."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "scripts", project / "scripts")
    (project / ".env.local").write_text(f"# local settings\nDATABASE_URL='{configured}'\n")
    env = {"CRON_TICK_URL": functions[1].url + "/v2", "CRON_SECRET": CRON_SECRET}
    done = run_script("setup-cron-config.sh", env, root=project)
    assert done.returncode == 0, done.stderr
    with pg.connect(configured) as conn:
        url = conn.execute("select job_worker_config('cron_tick_url') as u").fetchone()["u"]
    assert url == functions[1].url + "/v2"


def test_without_pg_net_the_http_extension_carries_the_call(cron_db: str, tmp_path: Path) -> None:
    """Synchronous: manual_process_jobs() returns cron_tick's HTTP status once it has run."""
    dsn = cron_db  # under the fixture's lock, emptied again: no pg_net this time
    pg_cron.reset(dsn)
    apply_migrations(dsn)
    with pg.connect(dsn) as conn:
        without_http_client(conn)
    pg_cron.install(dsn, "http_standin.sql")
    with (
        serve_pipeline(dsn, WORKER_SECRET, CRON_SECRET, tmp_path) as (_, cron),
        pg.connect(dsn) as conn,
    ):
        conn.execute("select cron.unschedule('process-queued-jobs')")
        conn.execute("select set_job_worker_config('cron_tick_url', %s)", (cron.url,))
        conn.execute("select set_job_worker_config('cron_secret', %s)", (CRON_SECRET,))
        assert status(conn)["http_client"] == "http"
        ids = [insert_job(conn) for _ in range(2)]
        assert conn.execute("select manual_process_jobs(2) as s").fetchone()["s"] == 200
        done = conn.execute(
            "select count(*) as n from jobs where id = any(%s) and status = 'done'", (ids,)
        ).fetchone()
        assert done["n"] == 2
        with pytest.raises(psycopg.errors.RaiseException, match="pg_net"):
            conn.execute("select set_job_kick(true)")


def test_prune_also_trims_cron_run_history_and_http_responses(cron_db: str) -> None:
    with pg.connect(cron_db) as conn:
        conn.execute(
            "insert into cron.job_run_details (jobid, command, status, start_time, end_time)"
            " values (1, 'old', 'succeeded', now() - interval '9 days', now() - interval '9 days'),"
            " (1, 'new', 'succeeded', now(), now())"
        )
        conn.execute(
            "insert into net._http_response (id, status_code, created)"
            " values (1, 200, now() - interval '9 days'), (2, 200, now())"
        )
        result = conn.execute("select prune_job_history() as r").fetchone()["r"]
        left = conn.execute(
            "select (select count(*) from cron.job_run_details) as runs,"
            " (select count(*) from net._http_response) as responses"
        ).fetchone()
    assert (result["cron_runs"], result["http_responses"]) == (1, 1)
    assert left == {"runs": 1, "responses": 1}


# --- issue 11: problems, tick results, the setup script's rules ------------------------------


def test_setup_script_without_an_http_client_warns_and_fails(db: str, tmp_path: Path) -> None:
    with pg.connect(db) as conn:
        without_http_client(conn)
    env = {"DATABASE_URL": db, "CRON_TICK_URL": "http://127.0.0.1:9/", "CRON_SECRET": CRON_SECRET}
    done = run_script("setup-cron-config.sh", env)
    assert done.returncode == 1
    assert "no HTTP client" in done.stderr and "pg_net" in done.stderr
    assert CRON_SECRET not in done.stdout + done.stderr


def test_setup_script_keeps_the_password_and_the_secret_out_of_sight(
    pg_server: str, db: str, tmp_path: Path
) -> None:
    """No command line carries the password (a psql on PATH records its arguments), and the
    secret is never in a statement's text: the server logs every statement of the script's
    role (log_statement = all, bound values not logged), and the secret is not in that log."""
    import glob
    import os

    real = subprocess.run(["which", "psql"], capture_output=True, text=True).stdout.strip()
    spy = tmp_path / "bin"
    spy.mkdir()
    (spy / "psql").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/argv\nexec {real} "$@"\n')
    (spy / "psql").chmod(0o755)
    logs = sorted(glob.glob("/var/log/postgresql/postgresql-*.log"), key=os.path.getmtime)
    assert logs, "the test reads the server's log from /var/log/postgresql (Debian's layout)"
    offset = os.path.getsize(logs[-1])
    with pg.connect(pg_server) as conn:
        conn.execute("drop role if exists jobqueue_pw_test")
        conn.execute("create role jobqueue_pw_test login superuser password 'Pa55-word-x'")
        conn.execute("alter role jobqueue_pw_test set log_statement = 'all'")
        conn.execute("alter role jobqueue_pw_test set log_parameter_max_length = 0")
    params = psycopg.conninfo.conninfo_to_dict(db)
    url = f"postgresql://jobqueue_pw_test:Pa55-word-x@127.0.0.1:5432/{params['dbname']}"
    secret = "statement-text-secret-7f3a"
    env = {
        "DATABASE_URL": url,
        "CRON_TICK_URL": "http://127.0.0.1:9/",
        "CRON_SECRET": secret,
        "PATH": f"{spy}:{os.environ['PATH']}",
    }
    try:
        done = run_script("setup-cron-config.sh", env)
    finally:
        with pg.connect(pg_server) as conn:
            conn.execute("drop owned by jobqueue_pw_test")
            conn.execute("drop role jobqueue_pw_test")
    assert "cron_secret stored in settings" in done.stdout, done.stderr
    argv = tmp_path / "argv"
    assert not argv.exists() or "Pa55-word-x" not in argv.read_text()
    with open(logs[-1], "rb") as log:
        log.seek(offset)
        logged = log.read().decode("utf-8", "replace")
    assert "set_job_worker_config" in logged  # the statements were logged...
    assert secret not in logged  # ...and the secret was not in them


def test_moving_to_vault_leaves_no_copy_in_database_settings(conn: Conn) -> None:
    conn.execute("select set_job_worker_config('cron_secret', 'old-plaintext-secret')")
    pg_cron.enable_vault(conn.info.dsn)
    conn.execute("select set_job_worker_config('cron_secret', 'new-vault-secret')")
    left = conn.execute(
        "select setting from pg_db_role_setting, unnest(setconfig) setting"
        " where setting like 'app.settings.cron_secret=%'"
        " and setdatabase = (select oid from pg_database where datname = current_database())"
    ).fetchall()
    assert left == []
    assert conn.execute("select current_setting('app.settings.cron_secret', true) as v").fetchone()[
        "v"
    ] in ("", None)
    assert conn.execute("select job_worker_config('cron_secret') as v").fetchone() == {
        "v": "new-vault-secret"
    }


def test_problems_is_empty_only_when_all_is_well(configured: str) -> None:
    with pg.connect(configured) as conn:
        row = status(conn)
        assert row["problems"] == [], row["problems"]
        conn.execute(
            "select cron.alter_job(jobid, active := false) from cron.job"
            " where jobname = 'process-queued-jobs'"
        )
        assert any("paused" in p for p in status(conn)["problems"])


def test_status_names_problems_without_pg_cron(conn: Conn) -> None:
    without_http_client(conn)
    problems = status(conn)["problems"]
    assert any("cron_tick URL is not configured" in p for p in problems)
    assert any("secret is not configured" in p for p in problems)
    assert any("pg_cron is not installed" in p for p in problems)
    assert any("no HTTP client" in p for p in problems)


def test_stalled_queue_and_expired_leases_are_problems(conn: Conn) -> None:
    conn.execute("update job_worker_settings set stall_after = '1 minute'")
    conn.execute("insert into jobs (type, run_at) values ('echo', now() - interval '2 minutes')")
    conn.execute(
        "insert into jobs (type, status, attempts, lease_expires_at)"
        " values ('echo', 'running', 1, now() - interval '1 second')"
    )
    row = status(conn)
    assert (row["stalled"], row["expired_leases"]) == (1, 1)
    assert any("runnable for longer than 00:01:00" in p for p in row["problems"])
    assert any("expired lease" in p and "requeue_job" in p for p in row["problems"])


@pytest.mark.parametrize(
    ("cron_env", "expected_status", "phrase"),
    [
        ({"CRON_SECRET": "not-the-stored-one"}, 401, "does not match cron_tick's CRON_SECRET"),
        (
            {"WORKER_PULL_URL": "http://127.0.0.1:9/"},
            200,
            "every call from cron_tick to worker_pull",
        ),
    ],
)
def test_a_failing_tick_shows_in_problems_then_clears(
    cron_db: str, tmp_path: Path, cron_env: dict[str, str], expected_status: int, phrase: str
) -> None:
    """What the scheduled call got back (pg_net's response, found by its request id) is in
    last_tick_* and, when it went wrong, in problems; a good tick clears it."""
    from jobqueue.tools.serving import serve

    worker_env = {"JOB_WORKER_SECRET": WORKER_SECRET, "DATABASE_URL": cron_db}
    with serve("worker_pull", worker_env, tmp_path) as worker:
        good = {
            "CRON_SECRET": CRON_SECRET,
            "JOB_WORKER_SECRET": WORKER_SECRET,
            "WORKER_PULL_URL": worker.url,
        }
        with serve("cron_tick", {**good, **cron_env}, tmp_path) as bad_cron:
            assert setup_config(cron_db, bad_cron.url).returncode == 0
            with pg.connect(cron_db) as conn:
                insert_job(conn, "echo")
                conn.execute("select manual_process_jobs(1)")
                wait_for(lambda: status(conn)["last_tick_status"] is not None, 20)
                row = status(conn)
                assert row["last_tick_status"] == expected_status
                assert any(phrase in p for p in row["problems"]), row["problems"]
                assert CRON_SECRET not in str(row) and WORKER_SECRET not in str(row)
        with serve("cron_tick", good, tmp_path) as cron:
            assert setup_config(cron_db, cron.url).returncode == 0
            with pg.connect(cron_db) as conn:
                conn.execute("select manual_process_jobs(1)")
                wait_for(lambda: status(conn)["last_tick_summary"] is not None, 20)
                row = status(conn)
                assert row["last_tick_status"] == 200 and row["problems"] == [], row["problems"]
                assert row["last_tick_summary"]["processed"] == 1


def test_an_unreachable_cron_tick_shows_in_problems_then_clears(
    cron_db: str, functions: tuple[Served, Served]
) -> None:
    from jobqueue.tools.serving import free_port

    assert setup_config(cron_db, f"http://127.0.0.1:{free_port()}/").returncode == 0
    with pg.connect(cron_db) as conn:
        conn.execute("select manual_process_jobs(1)")
        wait_for(lambda: status(conn)["last_tick_error"] is not None, 20)
        assert any("got no answer" in p for p in status(conn)["problems"])
        assert setup_config(cron_db, functions[1].url).returncode == 0
        conn.execute("select manual_process_jobs(1)")
        wait_for(lambda: status(conn)["last_tick_status"] == 200, 20)
        row = status(conn)
    assert row["last_tick_error"] is None and row["problems"] == [], row["problems"]


def test_no_one_but_the_owner_can_read_what_pg_net_queues(cron_db: str) -> None:
    """pg_net grants ALL on its queue (which holds x-cron-secret) to PUBLIC; after the
    migrations no role outside the owners can touch net.* tables, over the catalog."""
    with pg.connect(cron_db) as conn:
        for role in ("anon", "authenticated", "service_role"):
            conn.execute(
                f"do $$ begin if not exists (select from pg_roles where rolname = '{role}')"
                f" then create role {role}; end if; end $$"
            )
        conn.execute("create role jobqueue_nobody")
        try:
            conn.execute("select public.schedule_job_worker()")
            readable = conn.execute(
                "select c.relname, r.rolname from pg_class c"
                " cross join (values ('anon'), ('authenticated'), ('jobqueue_nobody')) r(rolname)"
                " where c.relnamespace = 'net'::regnamespace and c.relkind in ('r', 'v', 'p')"
                " and has_table_privilege(r.rolname, c.oid,"
                "   'select,insert,update,delete,truncate,references,trigger')"
            ).fetchall()
            tables = conn.execute(
                "select count(*) as n from pg_class"
                " where relnamespace = 'net'::regnamespace and relkind = 'r'"
            ).fetchone()
        finally:
            conn.execute("drop role jobqueue_nobody")
    assert tables is not None and tables["n"] >= 2
    assert readable == []
