"""``ingest_file``: an uploaded file becomes text and metadata on its ``ingest_files`` row."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import uuid
from typing import Any

from jobqueue.storage import ObjectNotFound, storage_for
from jobqueue.worker.context import JobContext
from jobqueue.worker.registry import PermanentJobError, job_handler

_TEXT_TYPES = ("application/json", "application/xml", "application/csv", "application/x-ndjson")


@job_handler("ingest_file", timeout_seconds=600)
def ingest_file(input: Any, ctx: JobContext) -> dict[str, Any]:
    file_id = input.get("file_id") if isinstance(input, dict) else None
    try:
        file_id = str(uuid.UUID(str(file_id)))
    except ValueError:
        raise PermanentJobError(
            "input.file_id must be the id (a UUID) of an ingest_files row"
        ) from None
    row = ctx.store.get_ingest_file(file_id)
    if row is None:
        raise PermanentJobError(f"no ingest_files row with id {file_id}")

    settings = ctx.settings
    if settings.supabase_url is None or settings.supabase_service_role_key is None:
        # A configuration fault, not the file's: retried, so fixing the deployment saves it.
        raise RuntimeError("SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are needed for Storage")
    storage = storage_for(
        str(settings.supabase_url), settings.supabase_service_role_key.get_secret_value()
    )
    try:
        content = storage.download(row["bucket"], row["path"])
    except ObjectNotFound as exc:
        raise PermanentJobError(str(exc)) from None
    ctx.check_deadline()

    content_type = row.get("content_type") or mimetypes.guess_type(row["path"])[0]
    text = extract_text(content, content_type)
    if content_type == "application/json":
        check_json(text, row["path"])
    metadata = {
        "sha256": hashlib.sha256(content).hexdigest(),
        "size_bytes": len(content),
        "content_type": content_type,
        "chars": len(text),
        "lines": text.count("\n") + (1 if text and not text.endswith("\n") else 0),
    }
    ctx.store.mark_ingest_file_processed(file_id, text, metadata, content_type, len(content))
    return {"file_id": file_id, "size_bytes": len(content), "chars": len(text)}


def check_json(text: str, path: str) -> None:
    """A JSON upload that does not parse is corrupt: it can never succeed, so it fails now
    with where the parser stopped."""
    try:
        json.loads(text)
    except ValueError as exc:
        raise PermanentJobError(
            f"{path} is not valid JSON ({exc}): fix the file and upload it again"
        ) from None
    except RecursionError:
        raise PermanentJobError(f"{path} is nested too deeply to read as JSON") from None


def extract_text(content: bytes, content_type: str | None) -> str:
    """Text files decode as UTF-8; binary formats keep their metadata only, for now."""
    is_text = content_type is not None and (
        content_type.startswith("text/") or content_type in _TEXT_TYPES
    )
    if not is_text and b"\x00" in content[:8192]:
        return ""
    return content.decode("utf-8", errors="replace").replace("\x00", "")
