"""The one place a Storage URL is built, so no bucket or path an uploader chose can make the
worker send its key anywhere but ``$SUPABASE_URL/storage/v1/object/<bucket>/``.

Names are checked as Supabase Storage checks them: a bucket is one segment, a path is
``/``-separated segments, none empty, ``.`` or ``..``, and no control characters. Each segment
is then percent-encoded on its own, so ``?``, ``#``, ``%`` and ``\\`` stay inside it.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

OBJECT_PREFIX = "/storage/v1/object/"
MAX_BUCKET_CHARS = 100
MAX_PATH_CHARS = 1024


class UnsafeName(ValueError):
    """A bucket or path Storage could not hold; the message says which and why."""


def _segment_problem(segment: str) -> str | None:
    if segment == "":
        return "has an empty segment (a leading, trailing or doubled '/')"
    if segment in (".", ".."):
        return f"has a {segment!r} segment"
    if any(ord(char) < 32 or ord(char) == 127 for char in segment):
        return "contains a control character"
    if any(0xD800 <= ord(char) <= 0xDFFF for char in segment):
        return "contains a lone surrogate"
    return None


def object_url(supabase_url: str, bucket: str, path: str) -> str:
    """``$SUPABASE_URL/storage/v1/object/<bucket>/<path>``, or ``UnsafeName``."""
    if not isinstance(bucket, str) or not bucket:
        raise UnsafeName("the bucket name is empty")
    if "/" in bucket or len(bucket) > MAX_BUCKET_CHARS:
        raise UnsafeName(
            f"the bucket name must be one segment of at most {MAX_BUCKET_CHARS} characters"
        )
    problem = _segment_problem(bucket)
    if problem:
        raise UnsafeName(f"the bucket name {problem}")
    if not isinstance(path, str) or not path:
        raise UnsafeName("the object path is empty")
    if len(path) > MAX_PATH_CHARS:
        raise UnsafeName(f"the object path is longer than {MAX_PATH_CHARS} characters")
    segments = path.split("/")
    for segment in segments:
        problem = _segment_problem(segment)
        if problem:
            raise UnsafeName(f"the object path {problem}")
    base = supabase_url.rstrip("/")
    prefix = f"{OBJECT_PREFIX}{quote(bucket, safe='')}/"
    url = base + prefix + "/".join(quote(s, safe="") for s in segments)
    if not is_under(url, base, prefix):  # defence in depth: the encoding above guarantees it
        raise UnsafeName("the object path does not stay inside its bucket")
    return url


def is_under(url: str, supabase_url: str, prefix: str = OBJECT_PREFIX) -> bool:
    """True when ``url`` has ``supabase_url``'s origin and its path starts with that URL's own
    path followed by ``prefix`` (a redirect is followed only when this holds)."""
    target, base = urlsplit(url), urlsplit(supabase_url.rstrip("/"))
    if (target.scheme, target.netloc.lower()) != (base.scheme, base.netloc.lower()):
        return False
    if target.query or target.fragment:
        return False
    segments = target.path.split("/")
    if any(s in (".", "..") or s.lower() in ("%2e", "%2e%2e", ".%2e", "%2e.") for s in segments):
        return False
    return target.path.startswith(base.path + prefix)
