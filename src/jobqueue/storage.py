"""Downloads from Supabase Storage with the service role key."""

from __future__ import annotations

from functools import cache

import httpx
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError


class ObjectNotFound(Exception):
    pass


@cache
def storage_for(supabase_url: str, service_role_key: str) -> Storage:
    """One client (and its keep-alive connections) per project for the life of the instance."""
    return Storage(supabase_url, service_role_key)


class Storage:
    def __init__(self, supabase_url: str, service_role_key: str, timeout: int = 60) -> None:
        headers = {"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"}
        base = supabase_url.rstrip("/") + "/storage/v1/"
        http = httpx.Client(timeout=timeout, follow_redirects=True)
        self._client = SyncStorageClient(base, headers, http_client=http)

    def download(self, bucket: str, path: str) -> bytes:
        try:
            return self._client.from_(bucket).download(path)
        except StorageApiError as exc:
            # Storage answers a missing object with 404, or with 400 and statusCode "404".
            if str(exc.status) == "404" or exc.code in ("not_found", "NoSuchKey"):
                raise ObjectNotFound(f"{bucket}/{path} does not exist in Storage") from None
            raise
