"""The chunker on one large piece against the same text in 1 MiB pieces (issue 16, item 8).

A JSON or DOCX paragraph can arrive as one huge piece; the chunker must stay linear in it. It
prints seconds for 8, 16 and 32 MiB in one piece and in 1 MiB pieces, and their ratio (target:
one piece within 1.5x of the pieces, and doubling the size about doubles the time).

    python bench/chunker.py
"""

from __future__ import annotations

from _common import machine, median, timed
from jobqueue.handlers.ingest.chunks import chunked

MIB = 1024 * 1024


def seconds(pieces: list[str]) -> float:
    return median([timed(lambda: sum(1 for _ in chunked(pieces, 1500, 200))) for _ in range(3)])


def main() -> None:
    print(machine())
    print(f"{'MiB':>4} {'one piece s':>12} {'1 MiB pieces s':>15} {'ratio':>6}")
    for size in (8, 16, 32):
        text = ("lorem ipsum dolor sit amet " * (size * MIB // 27 + 1))[: size * MIB]
        whole = seconds([text])
        split = seconds([text[i : i + MIB] for i in range(0, len(text), MIB)])
        print(f"{size:>4} {whole:>12.3f} {split:>15.3f} {whole / split:>6.2f}")


if __name__ == "__main__":
    main()
