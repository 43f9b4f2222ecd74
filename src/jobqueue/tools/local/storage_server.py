"""Supabase Storage's object API over a local folder, for running the whole pipeline on one
machine: the same wire format as the real service (what storage3 sends and reads), so
worker_pull downloads exactly as it does in production.

    POST|PUT /storage/v1/object/<bucket>/<path>   multipart field `file`, or the raw body
    GET      /storage/v1/object/<bucket>/<path>   the bytes; a missing object is Storage's
                                                   400 {"statusCode": "404", "error": "not_found"}

Every request needs the service role key (``Authorization: Bearer`` or ``apikey``).
"""

from __future__ import annotations

import hmac
import json
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from werkzeug import Request, Response
from werkzeug.wsgi import wrap_file

from jobqueue.tools.local.server import LocalServer

PREFIX = "/storage/v1/object/"


class LocalStorage:
    def __init__(self, root: Path, service_key: str, host: str = "127.0.0.1", port: int = 0):
        self.root = root
        self.key = service_key
        root.mkdir(parents=True, exist_ok=True)
        self._server = LocalServer(self._app, host, port)
        self.url = self._server.base_url

    def __enter__(self) -> LocalStorage:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self._handle(request, environ)
        return response(environ, start_response)

    def _handle(self, request: Request, environ: dict[str, Any]) -> Response:
        given = request.headers.get("apikey") or request.headers.get("Authorization", "")
        given = given.removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.key.encode()):
            return _error(400, "403", "Unauthorized", "invalid signature")
        if not request.path.startswith(PREFIX):
            return _error(400, "404", "not_found", "route not found")
        parts = request.path[len(PREFIX) :].removeprefix("authenticated/").split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            return _error(400, "400", "InvalidKey", "invalid object path")
        target = self.root.joinpath(*parts)
        key = "/".join(parts)
        if request.method in ("POST", "PUT"):
            target.parent.mkdir(parents=True, exist_ok=True)
            upload = request.files.get("file")
            with target.open("wb") as out:
                shutil.copyfileobj(upload.stream if upload else request.stream, out)
            return Response(
                json.dumps({"Key": key, "Id": str(uuid.uuid4())}), content_type="application/json"
            )
        if request.method == "GET":
            if not target.is_file():
                return _error(400, "404", "not_found", "Object not found")
            return Response(
                wrap_file(environ, target.open("rb")),
                direct_passthrough=True,
                content_type="application/octet-stream",
                headers={"Content-Length": str(target.stat().st_size)},
            )
        return _error(405, "405", "method_not_allowed", f"{request.method} is not supported")


def _error(status: int, code: str, error: str, message: str) -> Response:
    body = {"statusCode": code, "error": error, "message": message}
    return Response(json.dumps(body), status=status, content_type="application/json")
