"""cron_tick's request body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TickRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iterations: int = Field(default=5, ge=1, le=100)
    delay: int = Field(default=1000, ge=0, le=60_000)
    max_jobs: int | None = Field(default=None, ge=1, le=100)
    concurrency: int = Field(default=1, ge=1, le=50)
