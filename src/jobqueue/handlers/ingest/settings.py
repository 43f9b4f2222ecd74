"""The ingest handler's own configuration, read from the environment (never the worker's)."""

from __future__ import annotations

from pydantic import Field, HttpUrl, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue.errors import NotConfigured
from jobqueue.supabase_keys import KEY_VARIABLES, chosen_key


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_ignore_empty=True)

    supabase_url: HttpUrl | None = None
    # Storage's key: the new-style secret key, else the legacy service role key.
    supabase_secret_key: SecretStr | None = None
    supabase_service_role_key: SecretStr | None = None
    # Bigger files fail for good, with this limit in the message.
    ingest_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # One upload must not take a worker down: over these the file fails for good, saying which.
    ingest_max_text_chars: int = Field(default=100_000_000, ge=1)
    ingest_max_chunks: int = Field(default=100_000, ge=1)
    ingest_max_expanded_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    ingest_chunk_chars: int = Field(default=1500, ge=100, le=100_000)
    ingest_chunk_overlap: int = Field(default=200, ge=0)
    # An OpenAI-compatible embeddings endpoint (POST {url}/embeddings); all three, or none.
    embeddings_url: HttpUrl | None = None
    embeddings_model: str | None = None
    embeddings_api_key: SecretStr | None = None
    embeddings_batch: int = Field(default=64, ge=1, le=2048)

    @model_validator(mode="after")
    def _consistent(self) -> IngestSettings:
        if self.ingest_chunk_overlap >= self.ingest_chunk_chars:
            raise ValueError("INGEST_CHUNK_OVERLAP must be smaller than INGEST_CHUNK_CHARS")
        if (self.embeddings_url is None) != (self.embeddings_model is None):
            raise ValueError("set EMBEDDINGS_URL and EMBEDDINGS_MODEL together")
        return self

    def storage(self) -> tuple[str, str]:
        """Storage's URL and key, or ``NotConfigured`` naming what is missing: a deployment
        fault no retry can fix, so the job fails at once with the variable's name."""
        key = chosen_key(self.supabase_secret_key, self.supabase_service_role_key)
        missing = [
            name
            for name, value in (("SUPABASE_URL", self.supabase_url), (KEY_VARIABLES, key))
            if value is None
        ]
        if missing:
            raise NotConfigured(
                f"ingest_file needs {' and '.join(missing)} to download from Storage"
            )
        assert key is not None
        return str(self.supabase_url), key

    @property
    def embeddings(self) -> bool:
        return self.embeddings_url is not None


def ingest_settings() -> IngestSettings:
    """Read per job (about 0.1 ms), so a change of the environment needs no restart."""
    from pydantic import ValidationError

    try:
        return IngestSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(e['loc'][0]).upper() if e['loc'] else ''} {e['msg']}".strip()
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise NotConfigured(f"ingest_file is misconfigured: {problems}") from None
