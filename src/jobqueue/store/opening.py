"""Which store a worker uses, from its settings: one place, for worker_pull and its guardian."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobqueue.settings import WorkerSettings
    from jobqueue.store.base import QueueStore


def open_store(settings: WorkerSettings) -> QueueStore:
    """``DATABASE_URL`` wins; Supabase REST is for deployments that cannot reach Postgres."""
    if settings.database_url is not None:
        from jobqueue.store.postgres import PostgresStore

        return PostgresStore(
            settings.database_url.get_secret_value(), settings.database_call_timeout_seconds
        )
    from jobqueue.store.rest import RestStore

    assert settings.supabase_url is not None and settings.supabase_key is not None
    return RestStore(str(settings.supabase_url), settings.supabase_key)
