"""Built-in job handlers. Every module in this package is imported by ``load_handlers()``, so a
new job type is one file here with one ``@job_handler`` function."""

from __future__ import annotations

import importlib
import pkgutil


def load_handlers() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
