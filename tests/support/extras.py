"""Tests that need more than a bare PostgreSQL (scripts/setup-test-postgres.sh installs it)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skips, saying why; where JOBQUEUE_NO_SKIP=1 (CI) a missing extra fails the test instead."""
    if os.environ.get("JOBQUEUE_NO_SKIP") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def tool(name: str) -> str:
    """A command installed with this interpreter's packages (a virtual environment's bin, even
    when it is not activated), else whatever PATH finds."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)
