"""Static checks that CI must run on every change: every shell script passes shellcheck, and the
deploy recipes pass their platforms' own validators."""

from __future__ import annotations

import subprocess

from jobqueue.tools.serving import ROOT
from tests.support.extras import tool


def test_every_shell_script_passes_shellcheck() -> None:
    scripts = sorted(
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.sh")
        if not any(part in (".git", "dist", "node_modules") for part in path.parts)
    )
    assert len(scripts) >= 6
    result = subprocess.run(
        [tool("shellcheck"), "-x", *scripts], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrations_pass_squawk_with_each_waiver_explained() -> None:
    """Global waivers are in .squawk.toml with their reasons; the rest are in place."""
    migrations = sorted(str(p) for p in (ROOT / "supabase" / "migrations").glob("*.sql"))
    result = subprocess.run(
        [tool("squawk"), "--config", str(ROOT / ".squawk.toml"), "--reporter", "gcc", *migrations],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
