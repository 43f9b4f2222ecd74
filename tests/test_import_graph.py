"""The package's import graph (issue 17): every ``import jobqueue...`` between its modules, lazy
ones inside functions included. The operator's tools live in ``jobqueue.tools``; the run-time
core (everything else) never imports them, the functions' code reaches none of them, and no
two modules import each other, directly or round a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from jobqueue.tools.serving import ROOT

SOURCE = ROOT / "src"
# The operator's tools: the CLI, the local run, the migrations runner, the gateway they share,
# the test-serving helpers; and `python -m jobqueue`, which starts the CLI. The deployable
# functions must never need them.
TOOLS = ("jobqueue.tools", "jobqueue.__main__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in (SOURCE / "jobqueue").rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _is_tool(name: str) -> bool:
    return any(name == t or name.startswith(t + ".") for t in TOOLS)


def test_the_functions_code_never_reaches_the_tools() -> None:
    graph = _graph()
    core = {
        m
        for entry in ("functions/cron_tick/main.py", "functions/worker_pull/main.py")
        for m in _entry_imports(ROOT / entry, graph)
    }
    assert core, "the entry points import the package"
    leaks = sorted(m for m in core if _is_tool(m))
    assert leaks == [], f"tools reached from the functions: {leaks}"


def _entry_imports(entry: Path, graph: dict[str, set[str]]) -> set[str]:
    direct: set[str] = set()
    for node in ast.walk(ast.parse(entry.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module in graph:
            direct.add(node.module)
    found = set(direct)
    for module in direct:
        found |= _reach(graph, module)
    return found


def test_no_import_circle() -> None:
    graph = _graph()
    circles = []
    for module in graph:
        for nxt in graph[module]:
            if module in _reach(graph, nxt) and not nxt.startswith(module + "."):
                circles.append((module, nxt))
    # A package's __init__ re-exporting its own submodule is not a circle of design.
    circles = [(a, b) for a, b in circles if not (b.startswith(a + ".") or a.startswith(b + "."))]
    assert circles == []


def test_the_core_never_imports_the_tools() -> None:
    """Not only what today's main.py reaches: no module outside jobqueue.tools imports one
    inside it, so a handler or store added tomorrow cannot pull the CLI into a bundle."""
    graph = _graph()
    crossings = sorted(
        (module, target)
        for module, targets in graph.items()
        if not _is_tool(module)
        for target in targets
        if _is_tool(target)
    )
    assert crossings == []


def test_every_tool_lives_under_the_tools_package() -> None:
    """The operator-only modules named in the issue sit in jobqueue.tools, not at the root."""
    graph = _graph()
    for name in ("cli", "local", "migrate", "operations", "serving"):
        assert f"jobqueue.{name}" not in graph
        assert any(
            m == f"jobqueue.tools.{name}" or m.startswith(f"jobqueue.tools.{name}.") for m in graph
        )


def test_a_new_worker_pull_loads_a_handlers_libraries_only_for_its_jobs() -> None:
    """A fresh instance's health check (which registers every handler) loads neither httpx nor
    charset-normalizer with a direct database: the ingest handler imports them when a file
    needs them (cold start, issue 21)."""
    probe = (
        "import sys, main\n"
        "answer = main.app.endpoint.health()\n"
        "assert answer['handlers']['ingest_file'], answer\n"
        "print(sorted(m for m in ('httpx', 'charset_normalizer') if m in sys.modules))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(SOURCE),
        "JOB_WORKER_SECRET": "s",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT / "functions" / "worker_pull",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
