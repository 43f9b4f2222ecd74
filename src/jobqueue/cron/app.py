"""cron_tick as an endpoint, plus the direct (IAM-authorised) Lambda invocation.

Imports of pydantic, pydantic-settings and httpx wait for the first request: cron_tick is on the
cold-start path every minute, and a module that imports fast keeps that cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobqueue.errors import NotConfigured
from jobqueue.http.core import BadRequest, Endpoint

if TYPE_CHECKING:
    from jobqueue.cron.models import TickRequest
    from jobqueue.cron.service import CronService
    from jobqueue.settings import CronSettings


class CronApp:
    def __init__(self) -> None:
        self._settings: CronSettings | None = None
        self._service: CronService | None = None
        self.endpoint: Endpoint[CronSettings, TickRequest] = Endpoint(
            name="cron_tick",
            secret_header="x-cron-secret",
            load_settings=self.settings,
            secret_of=_cron_secret,
            parse=_parse,
            serve=self.serve,
        )

    def base_settings(self) -> CronSettings:
        if self._settings is None:
            from jobqueue import settings

            self._settings = settings.load(settings.CronSettings)
        return self._settings

    def settings(self) -> CronSettings:
        """What the HTTP endpoint needs: everything, CRON_SECRET included."""
        settings = self.base_settings()
        if settings.cron_secret is None:
            raise NotConfigured("CRON_SECRET is missing or invalid (Field required)")
        return settings

    def serve(self, settings: CronSettings, request: TickRequest) -> dict[str, Any]:
        if self._service is None:
            import httpx

            from jobqueue.cron.service import CronService

            # One client per warm instance: keep-alive connections to worker_pull across ticks.
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            self._service = CronService(settings, httpx.Client(limits=limits))
        return self._service.tick(request)

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None

    def invoke_direct(self, body: Any) -> dict[str, Any]:
        """EventBridge or Scheduler: IAM already authorised the caller, so no secret is needed."""
        try:
            settings = self.base_settings()
        except NotConfigured as exc:
            return {"error": "not_configured", "message": str(exc)}
        if not isinstance(body, dict):
            return {"error": "bad_request", "message": "the event's input must be a JSON object"}
        try:
            request = _parse(body)
        except BadRequest as exc:
            return {"error": "bad_request", "message": str(exc)}
        return self.endpoint.run(settings, request).body


def _parse(data: dict[str, Any]) -> TickRequest:
    from jobqueue.cron.models import TickRequest
    from jobqueue.validation import parse_body

    return parse_body(TickRequest, data)


def _cron_secret(settings: CronSettings) -> str:
    assert settings.cron_secret is not None
    return settings.cron_secret.get_secret_value()
