"""Overlapping chunks over a stream of text: each `size` characters long (the last shorter),
each starting `size - overlap` after the one before, preferring to end at whitespace. Memory
holds one chunk and the next piece, whatever the file's size."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    content: str


def chunked(pieces: Iterable[str], size: int, overlap: int) -> Iterator[Chunk]:
    buffer = ""
    start = 0  # the character offset of buffer[0] in the whole text
    index = 0
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size + size // 5:  # room to look for a break
            end = _break(buffer, size)
            yield Chunk(index, start, buffer[:end])
            index += 1
            step = max(1, end - overlap)
            buffer = buffer[step:]
            start += step
    while buffer.strip():
        end = _break(buffer, size) if len(buffer) > size else len(buffer)
        yield Chunk(index, start, buffer[:end])
        index += 1
        if end >= len(buffer):
            break
        step = max(1, end - overlap)
        buffer = buffer[step:]
        start += step


def _break(text: str, size: int) -> int:
    """Where a chunk of at most `size` characters should end: after the last whitespace in
    its final fifth, else exactly at `size`."""
    cut = text.rfind(" ", size - size // 5, size)
    newline = text.rfind("\n", size - size // 5, size)
    best = max(cut, newline)
    return best + 1 if best > 0 else size
