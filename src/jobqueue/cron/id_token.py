"""A Google-signed ID token for worker_pull's URL, so worker_pull need not be public on Cloud
Run: cron_tick's service account (from the metadata server) is what Cloud Run's IAM checks,
and the secret header is checked as well.

google-auth is imported only when WORKER_PULL_ID_TOKEN_AUDIENCE is set; tokens are cached until
shortly before they expire (an hour), so a tick costs no metadata call.
"""

from __future__ import annotations

import threading
from typing import Any

from jobqueue.errors import ServiceUnavailable


class GoogleIdToken:
    def __init__(self, audience: str) -> None:
        self._audience = audience
        self._request: Any = None
        self._credentials: Any = None
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        import google.auth.exceptions
        import google.auth.transport.requests
        import google.oauth2.id_token

        with self._lock:
            try:
                if self._credentials is None:
                    self._request = google.auth.transport.requests.Request()
                    fetch: Any = google.oauth2.id_token.fetch_id_token_credentials
                    self._credentials = fetch(self._audience, request=self._request)
                if not self._credentials.valid:
                    self._credentials.refresh(self._request)
            except google.auth.exceptions.GoogleAuthError as exc:
                raise ServiceUnavailable(
                    f"no ID token for worker_pull ({type(exc).__name__}): cron_tick needs a "
                    "service account from the metadata server, or unset "
                    "WORKER_PULL_ID_TOKEN_AUDIENCE"
                ) from None
            return {"Authorization": f"Bearer {self._credentials.token}"}
