"""Each function's configuration, read from the environment once per instance and validated.

A missing or invalid variable becomes :class:`NotConfigured` naming the variable, which the HTTP
pipeline answers with 503; secrets are held as ``SecretStr`` so they never appear in a repr.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import (
    AfterValidator,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue.errors import NotConfigured
from jobqueue.supabase_keys import KEY_VARIABLES, chosen_key

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

_COMMON = SettingsConfigDict(case_sensitive=False, extra="ignore", env_ignore_empty=True)


def _header_safe(secret: SecretStr) -> SecretStr:
    """A secret travels in an HTTP header: visible ASCII only, so what one function sends is
    byte for byte what the other compares (no padding a shell or console added)."""
    value = secret.get_secret_value()
    if not value or not all("!" <= char <= "~" for char in value):
        raise ValueError(
            "must be non-empty printable ASCII without spaces (check for a stray newline, "
            "space or non-ASCII character)"
        )
    return secret


HeaderSecret = Annotated[SecretStr, AfterValidator(_header_safe)]


DSN_EXPECTED = (
    "is not a PostgreSQL connection string; expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
)


def is_connection_string(dsn: str) -> bool:
    """Parsed as libpq would, so a malformed value is reported as configuration, not as an
    unreachable database. libpq's own message may quote the value, so it is never shown."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - any parse failure means the same to the user
        return False
    port = str(params.get("port", "5432"))
    return bool(params) and all(part.isdigit() for part in port.split(","))


class WorkerSettings(BaseSettings):
    model_config = _COMMON

    job_worker_secret: HeaderSecret
    database_url: SecretStr | None = None
    supabase_url: HttpUrl | None = None
    supabase_secret_key: SecretStr | None = None
    supabase_service_role_key: SecretStr | None = None
    job_lease_seconds: int = Field(default=300, ge=1, le=86_400)
    # Below every platform's timeout (Supabase 150 s, Cloud Run 300 s default, Lambda 900 s max),
    # so a call always returns before its platform kills it and strands claimed jobs.
    worker_pull_time_budget_seconds: float = Field(default=60.0, gt=0, le=900)
    job_handler_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # A retry delay a handler asks for (a peer's Retry-After: 1e12 is a peer's choice) is
    # capped here; at most 30 days, where the database caps it too.
    job_max_retry_delay_seconds: float = Field(default=3600.0, ge=0, le=30 * 24 * 3600)
    # Modules of your own job types, comma-separated; each is imported once, and its
    # @job_handler functions register themselves beside the built-in ones.
    job_handler_modules: str = ""
    # No call to the database takes longer than this, whatever the database does.
    database_call_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("database_url")
    @classmethod
    def _valid_dsn(cls, dsn: SecretStr | None) -> SecretStr | None:
        if dsn is not None and not is_connection_string(dsn.get_secret_value()):
            raise ValueError(DSN_EXPECTED)
        return dsn

    @property
    def supabase_key(self) -> str | None:
        return chosen_key(self.supabase_secret_key, self.supabase_service_role_key)

    @model_validator(mode="after")
    def _needs_a_store(self) -> WorkerSettings:
        if self.database_url is None and (self.supabase_url is None or self.supabase_key is None):
            missing = "SUPABASE_URL" if self.supabase_url is None else KEY_VARIABLES
            raise ValueError(
                f"no queue store: set DATABASE_URL, or {missing} "
                f"(SUPABASE_URL with {KEY_VARIABLES})"
            )
        return self


class CronSettings(BaseSettings):
    model_config = _COMMON

    # Optional here because a direct Lambda invocation (EventBridge) needs none; the HTTP
    # endpoint refuses to serve without it.
    cron_secret: HeaderSecret | None = None
    job_worker_secret: HeaderSecret
    worker_pull_url: HttpUrl
    worker_pull_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    cron_tick_budget_seconds: float = Field(default=120.0, gt=0, le=3600)
    # Cloud Run: when set (worker_pull's URL), each call also carries a Google-signed ID token
    # for this audience, so worker_pull can require IAM authentication. Kept exactly as given:
    # Cloud Run compares it with its own URL, where a trailing slash would not match.
    worker_pull_id_token_audience: str | None = Field(default=None, pattern=r"^https?://\S+$")


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
