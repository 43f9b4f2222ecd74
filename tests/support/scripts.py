"""Runs one of scripts/ as a user would: from the repo root, with only the given environment."""

from __future__ import annotations

import os
import subprocess

from jobqueue.tools.serving import ROOT


def run_script(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", f"scripts/{name}", *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
