"""Runs one of scripts/ as a user would: from the repo root, with only the given environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from jobqueue.tools.serving import ROOT


def run_script(
    name: str, env: dict[str, str], *args: str, root: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Runs ``root``/scripts/NAME from ``root`` (this checkout, or a copy of its scripts)."""
    return subprocess.run(
        ["bash", f"scripts/{name}", *args],
        cwd=root,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
