"""Text out of each supported format, as a stream of pieces, so a large text file is never
held whole. A corrupt file raises ``CorruptFile`` with a message a person can act on."""

from __future__ import annotations

import codecs
import json
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar
from xml.etree import ElementTree

from jobqueue.handlers.ingest.detect import DOCX, Detected

BLOCK = 1024 * 1024
SUPPORTED = {
    "text/plain",
    "text/markdown",
    "text/csv",
    "text/tab-separated-values",
    "application/json",
    "text/html",
    "application/pdf",
    DOCX,
}


class CorruptFile(Exception):
    pass


class Extracted:
    """The pieces of text, and what was learnt on the way (pages)."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}


def extract(path: Path, detected: Detected, name: str, facts: Extracted) -> Iterator[str]:
    kind = detected.type
    if kind in ("text/plain", "text/markdown", "text/csv", "text/tab-separated-values"):
        yield from _decoded(path, detected.encoding or "utf-8")
    elif kind == "application/json":
        text = path.read_bytes().decode(detected.encoding or "utf-8", errors="replace")
        try:
            json.loads(text)
        except ValueError as exc:
            raise CorruptFile(
                f"{name} is not valid JSON ({exc}): fix the file and upload it again"
            ) from None
        except RecursionError:
            raise CorruptFile(f"{name} is nested too deeply to read as JSON") from None
        yield text
    elif kind == "text/html":
        parser = _Text()
        for piece in _decoded(path, detected.encoding or "utf-8"):
            parser.feed(piece)
            yield from parser.take()
        parser.close()
        yield from parser.take()
    elif kind == "application/pdf":
        yield from _pdf(path, name, facts)
    elif kind == DOCX:
        yield from _docx(path, name)


def _decoded(path: Path, encoding: str) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            text = decoder.decode(block)
            yield text.replace("\x00", "") if "\x00" in text else text
    yield decoder.decode(b"", final=True)


class _Text(HTMLParser):
    """The visible text of an HTML page: no tags, no scripts or styles."""

    SKIP: ClassVar[frozenset[str]] = frozenset({"script", "style", "noscript", "template"})
    BREAK: ClassVar[frozenset[str]] = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "section",
            "article",
            "table",
            "title",
        ]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._skipping = 0
        self._out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BREAK:
            self._out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BREAK:
            self._out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._out.append(data)

    def take(self) -> Iterator[str]:
        out, self._out = self._out, []
        if out:
            yield "".join(out)


def _pdf(path: Path, name: str, facts: Extracted) -> Iterator[str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise CorruptFile(f"{name} is password-protected: upload it without a password")
        pages = reader.pages
        facts.facts["pages"] = len(pages)
        for page in pages:
            yield (page.extract_text() or "") + "\n"
    except CorruptFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise CorruptFile(
            f"{name} is not a readable PDF ({type(exc).__name__}: {exc}): "
            "re-export it and upload it again"
        ) from None


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx(path: Path, name: str) -> Iterator[str]:
    try:
        with zipfile.ZipFile(path) as archive, archive.open("word/document.xml") as xml:
            for _, element in ElementTree.iterparse(xml):
                if element.tag == f"{_W}p":
                    yield "".join(t.text or "" for t in element.iter(f"{_W}t")) + "\n"
                    element.clear()
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise CorruptFile(
            f"{name} is not a readable DOCX ({exc}): re-save it and upload it again"
        ) from None
