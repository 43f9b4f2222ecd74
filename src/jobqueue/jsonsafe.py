"""What PostgreSQL's ``jsonb`` (and ``text``) can hold that Python's ``json`` does not check.

Python's JSON accepts NaN and Infinity, ``"\\u0000"``, lone surrogates and any nesting (until a
``RecursionError``); PostgreSQL refuses the first three and a statement carrying one fails as a
whole. So every value bound for the database is checked here first, where a refusal can name
the one request or job at fault instead of failing a batch.
"""

from __future__ import annotations

import math
from typing import Any

# Deeper than any body or job output we mean to accept, far below Python's recursion limit.
MAX_DEPTH = 64


def jsonb_problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``value`` cannot be stored as ``jsonb``, or None when it can.

    Iterative, so a value nested deeper than the interpreter's recursion limit is described
    rather than crashing the check.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"nested more than {max_depth} levels deep"
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"holds {item}, which JSON cannot represent"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"has a key that is not a string ({type(key).__name__})"
                problem = text_problem(key)
                if problem:
                    return problem
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        else:
            return f"holds a {type(item).__name__}, which is not JSON"
    return None


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a PostgreSQL string, or None."""
    if "\x00" in text:
        return "holds a NUL character (\\u0000), which PostgreSQL text cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (invalid Unicode)"
    return None


def storable_text(text: str) -> str:
    """``text`` with what PostgreSQL cannot store made visible instead: for error messages,
    which must always reach the database."""
    if text_problem(text) is None:
        return text
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")
