"""Which Supabase key to use and how to send it.

Supabase has two kinds of server keys. The new secret keys (``sb_secret_...``) are accepted in
the ``apikey`` header only: sent as ``Authorization: Bearer`` they are refused, because the
gateway would read them as a JWT. The legacy ``service_role`` key is a JWT and is sent both
ways. Supabase retires the legacy keys, so the secret key wins when both are set.
"""

from __future__ import annotations

from pydantic import SecretStr

SECRET_KEY_PREFIX = "sb_secret_"
KEY_VARIABLES = "SUPABASE_SECRET_KEY or SUPABASE_SERVICE_ROLE_KEY"


def chosen_key(secret_key: SecretStr | None, service_role_key: SecretStr | None) -> str | None:
    """The key to send: the new-style secret key when set, else the legacy one."""
    for key in (secret_key, service_role_key):
        if key is not None and key.get_secret_value():
            return key.get_secret_value()
    return None


def key_headers(key: str) -> dict[str, str]:
    """The headers that carry ``key`` as Supabase expects for its kind."""
    if key.startswith(SECRET_KEY_PREFIX):
        return {"apikey": key}
    return {"apikey": key, "Authorization": f"Bearer {key}"}
