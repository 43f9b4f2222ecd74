"""Each function's configuration, read from the environment once per instance and validated.

A missing or invalid variable becomes :class:`NotConfigured` naming the variable, which the HTTP
pipeline answers with 503; secrets are held as ``SecretStr`` so they never appear in a repr.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import Field, HttpUrl, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue.errors import NotConfigured

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

_COMMON = SettingsConfigDict(case_sensitive=False, extra="ignore", env_ignore_empty=True)


class WorkerSettings(BaseSettings):
    model_config = _COMMON

    job_worker_secret: SecretStr = Field(min_length=1)
    database_url: SecretStr | None = None
    supabase_url: HttpUrl | None = None
    supabase_service_role_key: SecretStr | None = None
    job_lease_seconds: int = Field(default=300, ge=1, le=86_400)
    # Below every platform's timeout (Supabase 150 s, Cloud Run 300 s default, Lambda 900 s max),
    # so a call always returns before its platform kills it and strands claimed jobs.
    worker_pull_time_budget_seconds: float = Field(default=60.0, gt=0, le=900)
    job_handler_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _needs_a_store(self) -> WorkerSettings:
        if self.database_url is None and (
            self.supabase_url is None or self.supabase_service_role_key is None
        ):
            missing = "SUPABASE_URL" if self.supabase_url is None else "SUPABASE_SERVICE_ROLE_KEY"
            raise ValueError(
                f"no queue store: set DATABASE_URL, or {missing} "
                "(SUPABASE_URL with SUPABASE_SERVICE_ROLE_KEY)"
            )
        return self


class CronSettings(BaseSettings):
    model_config = _COMMON

    # Optional here because a direct Lambda invocation (EventBridge) needs none; the HTTP
    # endpoint refuses to serve without it.
    cron_secret: SecretStr | None = Field(default=None, min_length=1)
    job_worker_secret: SecretStr = Field(min_length=1)
    worker_pull_url: HttpUrl
    worker_pull_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    cron_tick_budget_seconds: float = Field(default=120.0, gt=0, le=3600)


def load(settings_class: type[SettingsT]) -> SettingsT:
    try:
        return settings_class()
    except ValidationError as exc:
        raise NotConfigured(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        if err["loc"]:
            variable = str(err["loc"][0]).upper()
            problems.append(f"{variable} is missing or invalid ({err['msg']})")
        else:
            problems.append(err["msg"].removeprefix("Value error, "))
    return "; ".join(problems)
