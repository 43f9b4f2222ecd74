"""cron_tick's request body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TickRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iterations: int = Field(default=5, ge=1, le=100)
    # The body's field is the contract's "delay"; inside, the name carries its unit.
    delay_ms: int = Field(default=1000, ge=0, le=60_000, alias="delay")
    max_jobs: int | None = Field(default=None, ge=1, le=100)
    concurrency: int = Field(default=1, ge=1, le=50)
