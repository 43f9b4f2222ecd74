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
