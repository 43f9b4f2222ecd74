"""worker_pull: claims queued jobs and runs their handlers (README, "worker_pull").

Serve locally:  functions-framework --source functions/worker_pull/main.py --target worker_pull
On Lambda the handler is ``main.lambda_handler``.
"""

from __future__ import annotations

from typing import Any

from jobqueue.handlers import load_handlers
from jobqueue.http.entry import http_function
from jobqueue.http.flask_adapter import from_flask, to_flask
from jobqueue.http.lambda_adapter import handle_event
from jobqueue.log import capture_library_logs
from jobqueue.worker.app import WorkerApp

capture_library_logs()
app = WorkerApp(load_handlers)


@http_function
def worker_pull(request: Any) -> Any:
    return to_flask(app.endpoint.handle(from_flask(request)))


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    return handle_event(app.endpoint, event, context)
