"""What a file really is, from its bytes: the uploader's content type is only a hint, used to
tell text formats apart that bytes cannot (Markdown from plain text)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

SAMPLE = 64 * 1024
_MAGIC = [
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x1f\x8b", "application/gzip"),
    (b"RIFF", "application/octet-stream"),
    (b"\x7fELF", "application/x-executable"),
]
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT_BY_SUFFIX = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".html": "text/html",
    ".htm": "text/html",
}


@dataclass(frozen=True)
class Detected:
    type: str
    encoding: str | None = None  # text formats only


def detect(path: Path, name: str, declared: str | None) -> Detected:
    with path.open("rb") as f:
        head = f.read(SAMPLE)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return Detected(kind)
    if head.startswith(b"PK\x03\x04"):
        return Detected(DOCX if _is_docx(path) else "application/zip")
    encoding = _text_encoding(head)
    if encoding is None:
        return Detected("application/octet-stream")
    suffix = Path(name).suffix.lower()
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return Detected("text/html", encoding)
    if suffix in TEXT_BY_SUFFIX:
        return Detected(TEXT_BY_SUFFIX[suffix], encoding)
    if stripped[:1] in (b"{", b"[") and declared in (None, "application/json"):
        return Detected("application/json", encoding)
    if declared in TEXT_BY_SUFFIX.values():
        return Detected(str(declared), encoding)
    return Detected("text/plain", encoding)


def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _text_encoding(head: bytes) -> str | None:
    """The encoding of text, or None for binary (NUL bytes, or nothing decodes it well)."""
    if not head:
        return "utf-8"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a character cut at the sample's end
            return "utf-8"
    # Only text that is not UTF-8 gets here: charset-normalizer (25 ms to import) waits for it.
    from charset_normalizer import from_bytes

    matches = list(from_bytes(head))
    if not matches:
        return None
    best = matches[0]
    # Western European text often fits several single-byte code pages equally well; among
    # equals, Windows-1252 is by far the most common one (what browsers assume for Latin-1).
    tied = {m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    return "cp1252" if "cp1252" in tied else best.encoding
