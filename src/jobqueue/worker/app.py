"""worker_pull as an endpoint: settings, store and service built once per warm instance.

Everything heavy (pydantic, the database driver, handlers) is imported at the first request,
so a new instance's module import stays fast. The handlers are the entry point's to load
(``load_handlers``): the worker never imports them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobqueue.http.core import Endpoint
from jobqueue.store.opening import open_store

if TYPE_CHECKING:
    from jobqueue.settings import WorkerSettings
    from jobqueue.worker.guardian import Guardian
    from jobqueue.worker.models import PullRequest
    from jobqueue.worker.service import WorkerService


class WorkerApp:
    """Settings once per instance; a service (its own database connection) per
    serving thread, since functions-framework's gunicorn serves requests on several threads."""

    def __init__(self, load_handlers: Callable[[list[str]], None]) -> None:
        """``load_handlers(modules)`` registers the job types, the built-in ones and the
        modules JOB_HANDLER_MODULES names; called once, at the first request."""
        self._load_handlers = load_handlers
        self._settings: WorkerSettings | None = None
        self._local = threading.local()
        self._services: list[WorkerService] = []
        self._guardian: Guardian | None = None
        self._lock = threading.Lock()
        self.endpoint: Endpoint[WorkerSettings, PullRequest] = Endpoint(
            name="worker_pull",
            secret_header="x-job-worker-secret",
            load_settings=self.settings,
            secret_of=lambda s: s.job_worker_secret.get_secret_value(),
            parse=_parse,
            serve=self.serve,
            describe=self.handlers,
        )

    def settings(self) -> WorkerSettings:
        if self._settings is None:
            from jobqueue import settings

            self._settings = settings.load(settings.WorkerSettings)
        return self._settings

    def handlers(self, settings: WorkerSettings) -> dict[str, Any]:
        """Each job type's own configuration: complete, or what is missing (never a value)."""
        from jobqueue.worker.registry import registry

        self._load_handlers(settings.job_handler_modules.split(","))
        described = {}
        for handler in registry.all():
            problem = handler.problem()
            described[handler.job_type] = (
                {"configured": True}
                if problem is None
                else {"configured": False, "problem": problem}
            )
        return {"handlers": described}

    def serve(self, settings: WorkerSettings, request: PullRequest) -> dict[str, Any]:
        service: WorkerService | None = getattr(self._local, "service", None)
        if service is None:
            from jobqueue.worker.registry import registry
            from jobqueue.worker.service import WorkerService

            self._load_handlers(settings.job_handler_modules.split(","))
            service = WorkerService(
                open_store(settings),
                registry,
                settings,
                open_lease_keeper=lambda: open_store(settings),
                guardian=self.guardian(settings),
            )
            self._local.service = service
            with self._lock:
                self._services.append(service)
        return service.pull(request)

    def guardian(self, settings: WorkerSettings) -> Guardian:
        """One lease guardian per process, shared by its serving threads."""
        with self._lock:
            if self._guardian is None:
                from jobqueue.worker.guardian import Guardian

                self._guardian = Guardian(settings.job_lease_seconds)
            return self._guardian

    def close(self) -> None:
        """Releases warm connections (tests, local runs); a deployed instance never calls it."""
        with self._lock:
            services, self._services = self._services, []
            guardian, self._guardian = self._guardian, None
        for service in services:
            service.close()
        if guardian is not None:
            guardian.close()
        self._local = threading.local()


def _parse(data: dict[str, Any]) -> PullRequest:
    from jobqueue.validation import parse_body
    from jobqueue.worker.models import PullRequest

    return parse_body(PullRequest, data)
