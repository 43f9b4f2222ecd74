"""``http_function``: functions-framework's ``@http`` where it is installed, else nothing.

The Lambda bundles leave functions-framework (and Flask) out, so on Lambda the decorator is
the identity and importing ``main`` costs no web framework. Under functions-framework it also
puts the connection guard (``wsgi_guard``) around the app that serves the function.
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
    from jobqueue.http.core import MAX_BODY_BYTES
    from jobqueue.http.wsgi_guard import install

    install(MAX_BODY_BYTES + 1)
    return cast(F, framework.http(func))
