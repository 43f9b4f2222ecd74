"""Text out of each supported format, as a stream of pieces, so a large file is never held
whole. A corrupt file raises ``CorruptFile`` with a message a person can act on.

Every extractor is bounded in memory and time whatever the upload holds (``Limits``): DOCX's XML
is decompressed with a byte cap and parsed by expat with no tree, no DTD and capped depth and
element count; JSON is validated by a streaming parser (ijson) with capped depth; an HTML
construct that never ends cannot grow the parser's buffer past a cap; pypdf's own decompression
limits fail the file instead of being swallowed. The handler caps the text and chunk counts."""

from __future__ import annotations

import codecs
import zipfile
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar
from xml.parsers import expat

from jobqueue.handlers.ingest.detect import DOCX, Detected

BLOCK = 1024 * 1024
PDF_MAX_STREAM_BYTES = 32 * 1024 * 1024
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


@dataclass(frozen=True)
class Limits:
    """What one file may make the extractor do (the handler's settings fill it)."""

    expanded_bytes: int = 256 * 1024 * 1024  # decompressed XML inside a DOCX
    depth: int = 256  # nesting of XML elements or JSON values
    elements: int = 5_000_000  # XML elements in a DOCX, values in a JSON file
    html_pending_chars: int = 16 * 1024 * 1024  # one unfinished HTML construct


class Extracted:
    """The pieces of text, and what was learnt on the way (pages)."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}


def extract(
    path: Path, detected: Detected, name: str, facts: Extracted, limits: Limits | None = None
) -> Iterator[str]:
    limits = limits or Limits()
    kind = detected.type
    encoding = detected.encoding or "utf-8"
    if kind in ("text/plain", "text/markdown", "text/csv", "text/tab-separated-values"):
        yield from _decoded(path, encoding)
    elif kind == "application/json":
        _check_json(path, encoding, name, limits)
        yield from _decoded(path, encoding)
    elif kind == "text/html":
        parser = _Text()
        for piece in _decoded(path, encoding):
            parser.feed(piece)
            if len(parser.rawdata) > limits.html_pending_chars:
                raise CorruptFile(
                    f"{name} has an HTML tag, comment or script over "
                    f"{limits.html_pending_chars:,} characters long that never ends"
                )
            yield from parser.take()
        parser.close()
        yield from parser.take()
    elif kind == "application/pdf":
        yield from _pdf(path, name, facts)
    elif kind == DOCX:
        yield from _docx(path, name, limits)


def _check_json(path: Path, encoding: str, name: str, limits: Limits) -> None:
    """Valid JSON, read as a stream of events: memory stays flat for a 50 MB ``[...]``."""
    import ijson

    depth = values = 0
    with closing(_decoded(path, encoding)) as pieces:
        try:
            for event, _ in ijson.basic_parse(_Utf8(pieces)):
                values += 1
                if values > limits.elements:
                    raise CorruptFile(
                        f"{name} holds more than {limits.elements:,} JSON values: not read"
                    )
                if event in ("start_map", "start_array"):
                    depth += 1
                    if depth > limits.depth:
                        raise CorruptFile(
                            f"{name} is nested more than {limits.depth} levels deep: "
                            "not read as JSON"
                        )
                elif event in ("end_map", "end_array"):
                    depth -= 1
        except ijson.JSONError as exc:
            # yajl's message goes on to quote the file around the fault: its first line says
            # what is wrong, and the file's own words stay out of the job's error.
            reason = (str(exc).strip().splitlines() or ["unreadable"])[0]
            raise CorruptFile(
                f"{name} is not valid JSON ({reason}): fix the file and upload it again"
            ) from None


class _Utf8:
    """A file-like reader of UTF-8 bytes over decoded pieces: ijson reads bytes, and the
    upload may be in any encoding ``detect`` found."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self._pending = b""
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) - self._at < size:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._pending = self._pending[self._at :] + piece.encode("utf-8", "replace")
            self._at = 0
        end = len(self._pending) if size < 0 else self._at + size
        out = self._pending[self._at : end]
        self._at += len(out)
        return out


def _decoded(path: Path, encoding: str) -> Generator[str, None, None]:
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
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import PyPdfError

    # pypdf's own bomb limits (75 MB per stream by default), lowered: one content stream's
    # text never needs more, and the worker's memory stays bounded.
    try:
        with apply_configuration(
            zlib_maximum_output_length=PDF_MAX_STREAM_BYTES,
            lzw_maximum_output_length=PDF_MAX_STREAM_BYTES,
            maximum_declared_stream_length=PDF_MAX_STREAM_BYTES,
            array_based_stream_maximum_output_length=PDF_MAX_STREAM_BYTES,
        ):
            reader = PdfReader(path)
            if reader.is_encrypted:
                raise CorruptFile(f"{name} is password-protected: upload it without a password")
            pages = reader.pages
            facts.facts["pages"] = len(pages)
            for page in pages:
                yield (page.extract_text() or "") + "\n"
    except CorruptFile:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        # pypdf's LimitReachedError (a decompression bomb) among them: never "1 character".
        raise CorruptFile(
            f"{name} is not a readable PDF ({type(exc).__name__}: {exc}): "
            "re-export it and upload it again"
        ) from None


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_PARAGRAPH, _TEXT = f"{_W} p", f"{_W} t"


def _docx(path: Path, name: str, limits: Limits) -> Iterator[str]:
    """``word/document.xml`` through expat: text of ``w:t`` elements, a newline per ``w:p``;
    nothing but the pending text is kept, so neither depth, element count nor paragraph length
    can grow memory."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptFile(
            f"{name} is not a readable DOCX ({exc}): re-save it and upload it again"
        ) from None
    with archive:
        try:
            member = archive.getinfo("word/document.xml")
        except KeyError:
            raise CorruptFile(
                f"{name} is not a readable DOCX (no word/document.xml): re-save it and "
                "upload it again"
            ) from None
        too_big = (
            f"{name} expands to more than INGEST_MAX_EXPANDED_BYTES "
            f"({limits.expanded_bytes:,} bytes) of XML: not read"
        )
        if member.file_size > limits.expanded_bytes:
            raise CorruptFile(too_big)
        out: list[str] = []
        depth = elements = 0
        in_text = False

        def start(tag: str, _attrs: Any) -> None:
            nonlocal depth, elements, in_text
            depth += 1
            elements += 1
            if depth > limits.depth:
                raise CorruptFile(f"{name} nests XML more than {limits.depth} levels deep")
            if elements > limits.elements:
                raise CorruptFile(f"{name} has more than {limits.elements:,} XML elements")
            in_text = tag == _TEXT

        def end(tag: str) -> None:
            nonlocal depth, in_text
            depth -= 1
            in_text = False
            if tag == _PARAGRAPH:
                out.append("\n")

        def text(data: str) -> None:
            if in_text:
                out.append(data)

        def no_dtd(*_: Any) -> None:
            raise CorruptFile(f"{name} declares a DTD or entities, which DOCX never does")

        parser = expat.ParserCreate(namespace_separator=" ")
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = text
        parser.StartDoctypeDeclHandler = no_dtd
        parser.EntityDeclHandler = no_dtd
        expanded = 0
        try:
            with archive.open(member) as xml:
                while block := xml.read(BLOCK):
                    expanded += len(block)
                    if expanded > limits.expanded_bytes:
                        raise CorruptFile(too_big)
                    parser.Parse(block, False)
                    if out:
                        yield "".join(out)
                        out.clear()
                parser.Parse(b"", True)
        except (expat.ExpatError, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise CorruptFile(
                f"{name} is not a readable DOCX ({exc}): re-save it and upload it again"
            ) from None
        if out:
            yield "".join(out)
