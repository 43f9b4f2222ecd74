"""worker_pull's request body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_jobs: int = Field(default=1, ge=1, le=100)
    job_types: list[str] | None = Field(default=None, min_length=1)
    time_budget_ms: int | None = Field(default=None, ge=1, le=900_000)
