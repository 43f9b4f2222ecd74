"""The operator's tools: the CLI, the local run, the migrations runner and the helpers that
serve the functions for tests and benchmarks.

Nothing under ``jobqueue.tools`` is imported by the deployable functions (the bundles are built
from what ``functions/F/main.py`` imports, and ``tests/test_import_graph.py`` holds that line),
so the tools may use what the functions must not pay for: click, rich, storage3, an embedded
PostgreSQL.
"""
