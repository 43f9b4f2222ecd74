"""Overlapping chunks over a stream of text: each `size` characters long (the last shorter),
each starting `size - overlap` after the one before, preferring to end at whitespace. Memory
holds about one piece and one chunk, whatever the file's size, and time is linear in the text:
the buffer is read through an offset and compacted once per piece, never copied per chunk."""

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
    at = 0  # where the next chunk starts in buffer
    start = 0  # the character offset of buffer[at] in the whole text
    index = 0
    for piece in pieces:
        buffer = buffer[at:] + piece
        at = 0
        while len(buffer) - at >= size + size // 5:  # room to look for a break
            end = _break(buffer, at, size)
            yield Chunk(index, start, buffer[at:end])
            index += 1
            step = max(1, end - at - overlap)
            at += step
            start += step
    while buffer[at:].strip():
        end = _break(buffer, at, size) if len(buffer) - at > size else len(buffer)
        yield Chunk(index, start, buffer[at:end])
        index += 1
        if end >= len(buffer):
            break
        step = max(1, end - at - overlap)
        at += step
        start += step


def _break(text: str, at: int, size: int) -> int:
    """Where a chunk starting at `at` of at most `size` characters should end: after the last
    whitespace in its final fifth, else exactly at `size`."""
    low, high = at + size - size // 5, at + size
    best = max(text.rfind(" ", low, high), text.rfind("\n", low, high))
    return best + 1 if best > at else high
