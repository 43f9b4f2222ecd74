"""``http_function``: functions-framework's ``@http`` where it is installed, else nothing.

The Lambda bundles leave functions-framework (and Flask) out, so on Lambda the decorator is
the identity and importing ``main`` costs no web framework.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def http_function(func: F) -> F:
    try:
        framework = importlib.import_module("functions_framework")
    except ImportError:  # the Lambda bundle
        return func
    return cast(F, framework.http(func))
