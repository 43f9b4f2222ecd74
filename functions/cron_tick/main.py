"""cron_tick: the scheduled driver that calls worker_pull (see CONTRACT.md, "cron_tick").

Serve locally:  functions-framework --source functions/cron_tick/main.py --target cron_tick
On Lambda the handler is ``main.lambda_handler``; EventBridge may invoke it directly.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from jobqueue.cron.app import CronApp
from jobqueue.http.flask_adapter import from_flask, to_flask
from jobqueue.http.lambda_adapter import from_event, is_http_event, to_proxy_response

app = CronApp()


@functions_framework.http
def cron_tick(request: Any) -> tuple[str, int, dict[str, str]]:
    return to_flask(app.endpoint.handle(from_flask(request)))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not is_http_event(event):
        source = event.get("source")
        body = event.get("detail", {}) if source in ("aws.events", "aws.scheduler") else event
        return app.invoke_direct(body)
    return to_proxy_response(app.endpoint.handle(from_event(event)))
