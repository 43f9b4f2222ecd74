"""cron_tick: the scheduled driver that calls worker_pull (README, "cron_tick").

Serve locally:  functions-framework --source functions/cron_tick/main.py --target cron_tick
On Lambda the handler is ``main.lambda_handler``; EventBridge may invoke it directly.
"""

from __future__ import annotations

from typing import Any

from jobqueue.cron.app import CronApp
from jobqueue.http.entry import http_function
from jobqueue.http.flask_adapter import from_flask, to_flask
from jobqueue.log import capture_library_logs

capture_library_logs()
app = CronApp()


@http_function
def cron_tick(request: Any) -> Any:
    return to_flask(app.endpoint.handle(from_flask(request)))


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    return app.handle_event(event, context)
