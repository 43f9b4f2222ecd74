"""Downloads from Supabase Storage, streamed to a temporary file so memory stays bounded
whatever the object's size.

    GET $SUPABASE_URL/storage/v1/object/<bucket>/<path>   (secret or service role key)

A missing object or one over the size limit fails for good; a timeout, a 5xx or a 429 is
retried with backoff (honouring Retry-After). The key goes only to ``SUPABASE_URL``'s origin and
only under the bucket's own prefix: redirects are not followed by httpx (it would keep sending
``apikey`` to another host) but here, and only when they stay under that prefix.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin

import httpx

from jobqueue.handlers.ingest.retry import retry_after
from jobqueue.handlers.ingest.storage_url import OBJECT_PREFIX, UnsafeName, is_under, object_url
from jobqueue.supabase_keys import key_headers
from jobqueue.worker.registry import PermanentJobError, RetryJobError

BLOCK = 1024 * 1024
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str


def download(
    supabase_url: str,
    key: str,
    bucket: str,
    path: str,
    max_bytes: int,
    timeout: float,
    progress: Callable[[int, int | None], None] | None = None,
) -> Downloaded:
    try:
        url = object_url(supabase_url, bucket, path)
    except UnsafeName as exc:
        raise PermanentJobError(
            f"{bucket!r}/{path!r} cannot name a Storage object: {exc}"
        ) from None
    prefix = f"{OBJECT_PREFIX}{quote(bucket, safe='')}/"
    headers = key_headers(key)
    digest = hashlib.sha256()
    size = 0
    target = tempfile.NamedTemporaryFile(prefix="ingest-", delete=False)  # noqa: SIM115
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            closing(_get(client, url, headers, supabase_url, prefix, bucket, path)) as r,
        ):
            _check(r, bucket, path)
            declared = int(r.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise PermanentJobError(_too_big(bucket, path, declared, max_bytes))
            for block in r.iter_raw(BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise PermanentJobError(_too_big(bucket, path, size, max_bytes))
                digest.update(block)
                target.write(block)
                if progress is not None:
                    progress(size, declared or None)
        target.close()
        return Downloaded(Path(target.name), size, digest.hexdigest())
    except httpx.TimeoutException:
        Path(target.name).unlink(missing_ok=True)
        raise RetryJobError(f"Storage timed out serving {bucket}/{path}") from None
    except httpx.TransportError as exc:
        Path(target.name).unlink(missing_ok=True)
        raise RetryJobError(
            f"Storage unreachable for {bucket}/{path}: {type(exc).__name__}"
        ) from None
    except BaseException:
        target.close()
        Path(target.name).unlink(missing_ok=True)
        raise


def _get(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    supabase_url: str,
    prefix: str,
    bucket: str,
    path: str,
) -> httpx.Response:
    """The streamed answer for ``url``, following at most ``MAX_REDIRECTS`` redirects that
    stay under the bucket's prefix on Storage's own origin; any other redirect fails the job
    for good, with the key never sent there."""
    for _ in range(MAX_REDIRECTS + 1):
        response = client.send(client.build_request("GET", url, headers=headers), stream=True)
        if not response.is_redirect:
            return response
        response.close()
        location = urljoin(url, response.headers.get("location", ""))
        if not is_under(location, supabase_url, prefix):
            raise PermanentJobError(
                f"Storage redirected {bucket}/{path} outside the bucket's own URL "
                f"({response.status_code}); not followed, so the key was not sent there"
            )
        url = location
    raise PermanentJobError(f"Storage redirected {bucket}/{path} more than {MAX_REDIRECTS} times")


def _check(response: httpx.Response, bucket: str, path: str) -> None:
    if response.is_success:
        return
    response.read()
    status = response.status_code
    code = ""
    try:
        body = response.json()
        code = str(body.get("statusCode") or body.get("error") or "")
    except ValueError:
        pass
    if status == 404 or code in ("404", "not_found", "NoSuchKey"):
        raise PermanentJobError(f"{bucket}/{path} does not exist in Storage")
    if status == 429 or status >= 500:
        wait = retry_after(response)
        raise RetryJobError(f"Storage answered {status} for {bucket}/{path}", wait)
    raise PermanentJobError(f"Storage refused {bucket}/{path}: HTTP {status} {response.text[:200]}")


def _too_big(bucket: str, path: str, size: int, limit: int) -> str:
    return (
        f"{bucket}/{path} is larger than INGEST_MAX_BYTES ({size:,} > {limit:,} bytes): "
        "raise the limit or upload a smaller file"
    )
