"""Each function's bundles: size, and cold start (import + first request) beside the repo layout.

Builds the bundles (scripts/build-bundles.sh), then, in fresh interpreters, times importing
`main` and answering one health GET through `lambda_handler`: from the unzipped Lambda zip
(alone on sys.path beside the standard library, `python -I -S`, as on Lambda) and from the
repo (functions/F/main.py with everything installed, as before the bundles). Also checks that
the Lambda path loads no Flask.

    python bench/bundles.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from jobqueue.serving import ROOT

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
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp) / "dist"
        subprocess.run(
            ["bash", "scripts/build-bundles.sh", str(dist)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        print(
            f"{'function':12} {'zip':>9} {'unzipped':>9} {'lambda cold start':>18} "
            f"{'repo cold start':>16} {'ratio':>6}  flask on the Lambda path"
        )
        for function in ("cron_tick", "worker_pull"):
            archive = dist / f"{function}-lambda.zip"
            unzipped = Path(tmp) / f"{function}-task"
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(unzipped)
            lambda_s, flask = cold_start(unzipped, runs)
            # The repo layout: main.py beside an environment with everything installed.
            repo_dir = Path(tmp) / f"{function}-repo"
            repo_dir.mkdir()
            (repo_dir / "main.py").write_text(
                (ROOT / "functions" / function / "main.py").read_text()
            )
            site = [p for p in sys.path if p.endswith("site-packages")]
            repo_s = cold_start_with_paths(repo_dir, [str(ROOT / "src"), *site], runs)
            print(
                f"{function:12} {archive.stat().st_size / 1e6:8.1f}M "
                f"{folder_size(unzipped) / 1e6:8.1f}M {lambda_s * 1000:15.0f} ms "
                f"{repo_s * 1000:13.0f} ms {repo_s / lambda_s:5.2f}x  {'yes' if flask else 'no'}"
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
