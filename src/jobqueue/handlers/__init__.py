"""The job types: every module or package here is imported by ``load_handlers()``, then the
modules JOB_HANDLER_MODULES names. A job type that needs its own tables is one migration plus
one package (``handlers/ingest/`` is one)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def load_handlers(extra_modules: Iterable[str] = ()) -> None:
    """The built-in handlers, then ``extra_modules`` (JOB_HANDLER_MODULES): your own."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    for name in extra_modules:
        if name.strip():
            importlib.import_module(name.strip())
