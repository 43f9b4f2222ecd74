"""Supabase's rules for server keys, as its gateway applies them in front of Storage and
PostgREST: a new secret key (``sb_secret_...``) is accepted in ``apikey`` and refused as a
bearer token; a legacy JWT key (``service_role``) is accepted in either header."""

from __future__ import annotations

from collections.abc import Mapping


def supabase_accepts(headers: Mapping[str, str], key: str) -> bool:
    apikey = headers.get("apikey")
    bearer = headers.get("Authorization")
    if key.startswith("sb_secret_"):
        # A secret key in Authorization is parsed as a JWT and refused, whatever apikey holds.
        return apikey == key and (bearer is None or key not in bearer)
    if bearer is not None and bearer != f"Bearer {key}":
        return False
    return apikey == key or bearer == f"Bearer {key}"
