"""An upload as a user's app makes one: the bytes into Supabase Storage (storage3, the
service role key), then an ``ingest_files`` row, whose trigger queues the ingest_file job."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jobqueue.supabase_keys import key_headers
from jobqueue.tools import operations


def upload_and_register(
    conn: operations.Conn,
    paths: Sequence[Path],
    bucket: str,
    prefix: str,
    storage: tuple[str, str] | None,
    progress: Callable[[int], object] | None = None,
) -> list[dict[str, Any]]:
    """``storage`` is (SUPABASE_URL, secret or service role key), or None when the bytes are already
    there; ``progress(files done)`` is told after each file."""
    client = None
    if storage is not None:
        import httpx
        from storage3 import SyncStorageClient

        url, key = storage
        headers = key_headers(key)
        client = SyncStorageClient(
            url.rstrip("/") + "/storage/v1/", headers, http_client=httpx.Client(timeout=60)
        )
    registered = []
    for path in paths:
        object_path = f"{prefix.strip('/')}/{path.name}" if prefix.strip("/") else path.name
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if client is not None:
            client.from_(bucket).upload(
                object_path, path, {"content-type": content_type, "upsert": "true"}
            )
        file_id = operations.register_upload(conn, bucket, object_path, content_type)
        registered.append({"file_id": file_id, "bucket": bucket, "path": object_path})
        if progress is not None:
            progress(len(registered))
    return registered
