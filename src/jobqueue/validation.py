"""Strict request-body validation with messages a caller can act on."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from jobqueue.http.core import BadRequest

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_body(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Strict mode: "5", 5.0 and true are not integers; unknown fields are refused by the model."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']}")
        raise BadRequest("; ".join(problems)) from None
