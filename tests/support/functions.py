"""In-process clients for the functions, built the way functions-framework loads them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from jobqueue.tools.serving import CONFIG_VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def client(function: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Flask test client for `function`, whose module is loaded afresh with exactly `env`.

    The module's warm state (connections, HTTP client) is closed when the test ends.
    """
    _configure(env, monkeypatch)
    source = ROOT / "functions" / function / "main.py"
    flask_app = functions_framework.create_app(function, str(source))
    _opened.append(sys.modules["main"].app)
    return flask_app.test_client()


_opened: list[Any] = []


def close_all() -> None:
    while _opened:
        _opened.pop().close()


def load_module(function: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The function's main module, loaded afresh (for its lambda_handler)."""
    import importlib.util

    _configure(env, monkeypatch)
    spec = importlib.util.spec_from_file_location(
        f"{function}_main_under_test", ROOT / "functions" / function / "main.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _opened.append(module.app)
    return module


def _configure(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly `env`: nothing from the developer's shell (a DATABASE_URL, say) leaks in."""
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@contextmanager
def cron_tick_with_worker_down(
    cron_secret: str, worker_secret: str, log_dir: Path
) -> Iterator[Any]:
    """A served cron_tick whose WORKER_PULL_URL answers nothing: every call of a tick fails."""
    from jobqueue.tools.serving import free_port, serve

    env = {
        "CRON_SECRET": cron_secret,
        "JOB_WORKER_SECRET": worker_secret,
        "WORKER_PULL_URL": f"http://127.0.0.1:{free_port()}/",
    }
    with serve("cron_tick", env, log_dir) as cron:
        yield cron
