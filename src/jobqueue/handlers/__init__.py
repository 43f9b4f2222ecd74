"""Built-in job handlers. Every module in this package is imported by ``load_handlers()``, so a
new job type is one file here with one ``@job_handler`` function."""

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
