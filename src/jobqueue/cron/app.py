"""cron_tick as an endpoint, plus the direct (IAM-authorised) Lambda invocation.

Imports of pydantic, pydantic-settings and httpx wait for the first request: cron_tick is on the
cold-start path every minute, and a module that imports fast keeps that cheap.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jobqueue import log
from jobqueue.errors import NotConfigured
from jobqueue.http.core import BadRequest, Endpoint, checked_object
from jobqueue.http.lambda_adapter import handle_event, is_http_event, request_ids

if TYPE_CHECKING:
    from jobqueue.cron.models import TickRequest
    from jobqueue.cron.service import CronService
    from jobqueue.settings import CronSettings


class DirectInvocationFailed(Exception):
    """A direct (EventBridge, Scheduler) invocation failed; the message is its JSON answer."""


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
            from jobqueue.cron.service import CronService

            headers = None
            if settings.worker_pull_id_token_audience is not None:
                from jobqueue.cron.id_token import GoogleIdToken

                headers = GoogleIdToken(str(settings.worker_pull_id_token_audience)).headers
            self._service = CronService(settings, headers)
        return self._service.tick(request)

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None

    def handle_event(self, event: Any, context: Any) -> dict[str, Any]:
        """A Lambda event: HTTP (a proxy response) or a direct invocation (the summary).

        A direct invocation that cannot run, or whose every worker_pull call failed, raises
        :class:`DirectInvocationFailed` (its message the JSON answer), so Lambda counts a
        function error: its Errors metric, the Scheduler's retry policy and dead-letter queue
        see what a returned value would hide."""
        if is_http_event(event):
            return handle_event(self.endpoint, event, context)
        with log.request_context(request_ids(context)):
            answer = self.invoke_direct(event)
            failed = "error" in answer or (
                answer.get("calls", 0) > 0 and answer.get("errors") == answer.get("calls")
            )
            if failed:
                log.log_event(
                    "ERROR",
                    "cron_tick direct invocation failed",
                    error=answer.get("error", "every worker_pull call failed"),
                    reason=answer.get("message"),
                )
                raise DirectInvocationFailed(json.dumps(answer, separators=(",", ":")))
            return answer

    def invoke_direct(self, event: Any) -> dict[str, Any]:
        """EventBridge or Scheduler: IAM already authorised the caller, so no secret is needed.
        An EventBridge event's body is its ``detail``; any other event is the body itself."""
        try:
            settings = self.base_settings()
        except NotConfigured as exc:
            return {"error": "not_configured", "message": str(exc)}
        is_eventbridge = isinstance(event, dict) and event.get("source") in (
            "aws.events",
            "aws.scheduler",
        )
        try:
            body = event.get("detail", {}) if is_eventbridge else event
            request = _parse(checked_object(body, "the event's input"))
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
