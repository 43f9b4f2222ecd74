"""worker_pull: claims queued jobs and runs their handlers (see CONTRACT.md, "worker_pull").

Serve locally:  functions-framework --source functions/worker_pull/main.py --target worker_pull
On Lambda the handler is ``main.lambda_handler``.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from jobqueue.http.flask_adapter import from_flask, to_flask
from jobqueue.http.lambda_adapter import from_event, to_proxy_response
from jobqueue.worker.app import WorkerApp

app = WorkerApp()


@functions_framework.http
def worker_pull(request: Any) -> tuple[str, int, dict[str, str]]:
    return to_flask(app.endpoint.handle(from_flask(request)))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return to_proxy_response(app.endpoint.handle(from_event(event)))
