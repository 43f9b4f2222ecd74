"""The deploy recipes in infra/ (issue 10): each passes its platform's validator, the GitHub
Actions step really calls a served cron_tick, and deploy.sh drives gcloud as documented without
ever putting a secret on a command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from jobqueue.tools.serving import ROOT, serve_pipeline
from tests.support.extras import tool
from tests.support.functions import cron_tick_with_worker_down
from tests.support.pg import connect
from tests.support.queue import insert_job, job

WORKER_SECRET = "worker-secret-recipes"
CRON_SECRET = "cron-secret-recipes"
WORKFLOW = ROOT / "infra" / "github-actions" / "process-jobs.yml"
TEMPLATE = ROOT / "infra" / "aws" / "template.yaml"


def test_sam_template_passes_cfn_lint_without_warnings() -> None:
    result = subprocess.run([tool("cfn-lint"), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_accepts_the_template() -> None:
    """The SAM CLI's own check (in its own virtual environment, which .ci/run makes)."""
    from tests.support import extras

    sam = ROOT / ".ci" / "tools" / "sam" / "bin" / "sam"
    if not sam.exists():
        extras.unavailable("the AWS SAM CLI is not installed: .ci/run puts it in .ci/tools/sam")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--template-file", str(TEMPLATE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0 and "is a valid SAM Template" in result.stdout, (
        result.stdout + result.stderr
    )


def test_the_sam_transform_accepts_the_template_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """aws-sam-translator, offline, as `sam validate` (without --lint) and `sam deploy` run it:
    they upload each local CodeUri first and hand the transform its S3 address, which is what
    is stood in for here. A `!Ref` CodeUri is refused at this step (SAM #271)."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(TEMPLATE.read_text())
    zips = {}
    for name, resource in template["Resources"].items():
        code = resource.get("Properties", {}).get("CodeUri")
        if resource["Type"] == "AWS::Serverless::Function":
            assert isinstance(code, str), f"{name}: CodeUri must be a literal path"
            zips[name] = (TEMPLATE.parent / code).resolve()
            resource["Properties"]["CodeUri"] = f"s3://bucket/{Path(code).name}"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    out = transform(template, {}, NoManagedPolicies())
    kinds = {r["Type"] for r in out["Resources"].values()}
    assert {
        "AWS::Lambda::Function",
        "AWS::Scheduler::Schedule",
        "AWS::SQS::Queue",
        "AWS::CloudWatch::Alarm",
        "AWS::Lambda::EventInvokeConfig",
    } <= kinds
    # The paths are the zips build-bundles.sh writes (dist/ at the repository's root).
    assert zips == {
        "WorkerPullFunction": (ROOT / "dist" / "worker_pull-lambda.zip").resolve(),
        "CronTickFunction": (ROOT / "dist" / "cron_tick-lambda.zip").resolve(),
    }


def test_sam_template_pins_what_the_contract_and_the_budgets_need() -> None:
    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, object]:
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {suffix: loader.construct_sequence(node)}
        return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]

    Loader.add_multi_constructor("!", tagged)
    resources = yaml.load(TEMPLATE.read_text(), Loader=Loader)["Resources"]
    cron = resources["CronTickFunction"]["Properties"]
    worker = resources["WorkerPullFunction"]["Properties"]
    [schedule] = cron["Events"].values()
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert schedule["Properties"]["State"] == "ENABLED"
    for function in (cron, worker):
        assert function["FunctionUrlConfig"]["AuthType"] == "NONE"
        assert "LogGroup" in function["LoggingConfig"]
    cron_env = cron["Environment"]["Variables"]
    worker_env = worker["Environment"]["Variables"]
    # cron_tick's budget plus one whole worker call fits in its timeout; a worker call
    # (budget, then one job's limit) fits in worker_pull's.
    assert (
        float(cron_env["CRON_TICK_BUDGET_SECONDS"]) + float(cron_env["WORKER_PULL_TIMEOUT_SECONDS"])
        < cron["Timeout"]
    )
    worker_call = float(worker_env["WORKER_PULL_TIME_BUDGET_SECONDS"]) + float(
        worker_env["JOB_HANDLER_TIMEOUT_SECONDS"]
    )
    assert worker_call < worker["Timeout"] <= float(cron_env["WORKER_PULL_TIMEOUT_SECONDS"])
    for name in ("CRON_SECRET", "JOB_WORKER_SECRET", "DATABASE_URL"):
        value = {**cron_env, **worker_env}[name]
        assert "resolve:secretsmanager" in str(value), f"{name} must come from Secrets Manager"


def test_workflow_is_valid_against_githubs_schema() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "workflow_dispatch" in triggers and triggers["schedule"][0]["cron"] == "* * * * *"


def run_step(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The workflow's step, run as the runner would: bash with the step's env."""
    [step] = yaml.safe_load(WORKFLOW.read_text())["jobs"]["process-jobs"]["steps"]
    assert set(step["env"]) >= {"CRON_TICK_URL", "CRON_SECRET"}
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflow_step_drains_jobs_through_a_served_cron_tick(db: str, tmp_path: Path) -> None:
    with serve_pipeline(db, WORKER_SECRET, CRON_SECRET, tmp_path) as (_, cron), connect(db) as conn:
        ids = [insert_job(conn, "echo") for _ in range(3)]
        result = run_step(
            {"CRON_TICK_URL": cron.url, "CRON_SECRET": CRON_SECRET, "ITERATIONS": "5"}
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["succeeded"] == 3
        assert all(job(conn, i)["status"] == "done" for i in ids)
        refused = run_step({"CRON_TICK_URL": cron.url, "CRON_SECRET": "wrong", "ITERATIONS": "1"})
        assert refused.returncode != 0 and "unauthorized" in refused.stdout
        assert CRON_SECRET not in refused.stdout + refused.stderr


def test_workflow_step_fails_when_every_worker_call_failed(tmp_path: Path) -> None:
    with cron_tick_with_worker_down(CRON_SECRET, WORKER_SECRET, tmp_path) as cron:
        result = run_step(
            {"CRON_TICK_URL": cron.url, "CRON_SECRET": CRON_SECRET, "ITERATIONS": "1"}
        )
    assert result.returncode == 1 and "every worker_pull call" in result.stdout


@pytest.fixture
def fake_gcloud(tmp_path: Path) -> Path:
    """A gcloud that records each call (and any --flags-file it was given) and answers the
    describe calls deploy.sh reads URLs from."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gcloud.log"
    (bin_dir / "gcloud").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "ARGV $*" >> {log}\n'
        'for a in "$@"; do case $a in --flags-file=*) cat "${a#*=}" >> '
        + str(log)
        + ";; esac; done\n"
        'prev=""; for a in "$@"; do [ "$prev" = --flags-file ] && cat "$a" >> '
        + str(log)
        + "; prev=$a; done\n"
        'case "$*" in\n'
        '  *"secrets versions access"*) printf "the-cron-secret-value" ;;\n'
        '  *"run services describe worker-pull"*) echo https://worker-pull-xyz.a.run.app ;;\n'
        '  *"run services describe cron-tick"*) echo https://cron-tick-xyz.a.run.app ;;\n'
        '  *"scheduler jobs describe"*) exit 1 ;;\n'
        "esac\n"
    )
    (bin_dir / "gcloud").chmod(0o755)
    return tmp_path


def test_cloud_run_deploy_script_drives_gcloud(fake_gcloud: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    for function in ("worker_pull", "cron_tick"):
        (dist / function).mkdir(parents=True)
        (dist / function / "main.py").write_text("")
    env = {
        "PATH": f"{fake_gcloud / 'bin'}:{os.environ['PATH']}",
        "PROJECT": "my-project",
        "DIST": str(dist),
    }
    result = subprocess.run(
        ["bash", "infra/cloudrun/deploy.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = (fake_gcloud / "gcloud.log").read_text()
    argv = [line for line in log.splitlines() if line.startswith("ARGV ")]
    assert any(f"run deploy worker-pull --source {dist}/worker_pull" in a for a in argv)
    assert any("--no-allow-unauthenticated" in a and "worker-pull" in a for a in argv)
    cron_deploy = next(a for a in argv if "run deploy cron-tick" in a)
    assert "WORKER_PULL_ID_TOKEN_AUDIENCE=https://worker-pull-xyz.a.run.app" in cron_deploy
    assert "--set-secrets CRON_SECRET=jobqueue-cron-secret:latest" in cron_deploy
    scheduler = next(a for a in argv if "scheduler jobs create http" in a)
    assert "--schedule * * * * *" in scheduler and "https://cron-tick-xyz.a.run.app" in scheduler
    assert "x-cron-secret=the-cron-secret-value" in log, "the header, from the flags file"
    assert not any("the-cron-secret-value" in a for a in argv), "never on a command line"
    assert "the-cron-secret-value" not in result.stdout + result.stderr
