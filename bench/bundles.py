"""Each function's bundles: size, and cold start (import + first request) beside the repo layout.

Builds the bundles (scripts/build-bundles.sh), then, in fresh interpreters, times importing
`main` and answering one health GET through `lambda_handler`: from the unzipped Lambda zip
(alone on sys.path beside the standard library, `python -I -S`, as on Lambda) and from the
repo (functions/F/main.py with everything installed, as before the bundles). Also checks that
the Lambda path loads no Flask.

    python bench/bundles.py [--runs 5] [--before REF]

With ``--before REF`` (a commit, e.g. the one before a change to the bundles) the same figures
are measured for REF's bundles too, built by REF's own build-bundles.sh in a git worktree, in
the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from jobqueue.tools.serving import ROOT

PROBE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
started = time.perf_counter()
import main
event = {"requestContext": {"http": {"method": "GET"}}, "headers": {}}
answer = main.lambda_handler(event, None)
took = time.perf_counter() - started
assert answer["statusCode"] == 200, answer
print(json.dumps({"seconds": took, "flask": "flask" in sys.modules}))
"""


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cold_start(code_dir: Path, runs: int) -> tuple[float, bool]:
    samples = []
    flask = False
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", PROBE, str(code_dir)],
            cwd=code_dir,
            capture_output=True,
            text=True,
            check=True,
            env={"JOB_WORKER_SECRET": "x" * 16, "PATH": "/usr/bin:/bin"},
        )
        result = json.loads(out.stdout)
        samples.append(result["seconds"])
        flask = flask or result["flask"]
    return statistics.median(samples), flask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", help="also measure this commit's bundles")
    args = parser.parse_args()
    print(
        f"{'tree':10} {'function':12} {'zip':>9} {'unzipped':>9} {'modules':>8} "
        f"{'lambda cold start':>18} {'repo cold start':>16}  flask on the Lambda path"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            tree = Path(tmp) / "before"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), args.before],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            try:
                measure(f"{args.before[:9]}", tree, Path(tmp) / "b", args.runs)
            finally:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True
                )
        measure("this tree", ROOT, Path(tmp) / "a", args.runs)


def measure(label: str, repo: Path, work: Path, runs: int) -> None:
    """Builds ``repo``'s bundles with its own script and prints a line per function."""
    dist = work / "dist"
    # Built for this interpreter, which times them (by default the zips are for the Python
    # the SAM template deploys, which may not be this one).
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        ["bash", "scripts/build-bundles.sh", str(dist)],
        cwd=repo,
        check=True,
        capture_output=True,
        env={**os.environ, "LAMBDA_PYTHON_VERSION": here},
    )
    for function in ("cron_tick", "worker_pull"):
        archive = dist / f"{function}-lambda.zip"
        unzipped = work / f"{function}-task"
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(unzipped)
            modules = sum(
                1 for n in zipped.namelist() if n.startswith("jobqueue/") and n.endswith(".py")
            )
        lambda_s, flask = cold_start(unzipped, runs)
        # The repo layout: main.py beside an environment with everything installed.
        repo_dir = work / f"{function}-repo"
        repo_dir.mkdir()
        (repo_dir / "main.py").write_text((repo / "functions" / function / "main.py").read_text())
        site = [p for p in sys.path if p.endswith("site-packages")]
        repo_s = cold_start_with_paths(repo_dir, [str(repo / "src"), *site], runs)
        print(
            f"{label:10} {function:12} {archive.stat().st_size / 1e6:8.1f}M "
            f"{folder_size(unzipped) / 1e6:8.1f}M {modules:8d} {lambda_s * 1000:15.0f} ms "
            f"{repo_s * 1000:13.0f} ms  {'yes' if flask else 'no'}"
        )


def cold_start_with_paths(code_dir: Path, paths: list[str], runs: int) -> float:
    """As cold_start, with the whole development environment after code_dir on sys.path."""
    probe = PROBE.replace(
        "sys.path.insert(0, sys.argv[1])", "sys.path[:0] = [sys.argv[1], *sys.argv[2:]]"
    )
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", probe, str(code_dir), *paths],
            cwd=code_dir,
            capture_output=True,
            text=True,
            check=True,
            env={"JOB_WORKER_SECRET": "x" * 16, "PATH": "/usr/bin:/bin"},
        )
        samples.append(json.loads(out.stdout)["seconds"])
    return statistics.median(samples)


if __name__ == "__main__":
    main()
