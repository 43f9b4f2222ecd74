"""Search over 100,000 chunks of 384 dimensions (synthetic, seeded), with the real pgvector:
HNSW build time, query p50/p99 with match_count 10 through match_file_chunks, recall@10 of
the index against exact search, and the same query without the index.

    python bench/search.py [CHUNKS]        (default 100000)
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time

import psycopg

from _common import machine, scratch_database

DIMS = 384
QUERIES = 100
SEED = 20261201


def main() -> None:
    chunks = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(machine())
    rng = random.Random(SEED)
    with scratch_database() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into ingest_files (id, bucket, path)"
            " select ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid,"
            " 'uploads', 'f' || i from generate_series(1, 1000) i"
        )
        # Clustered data, as real embeddings are: 200 centres, points around them.
        centres = [[rng.gauss(0, 1) for _ in range(DIMS)] for _ in range(200)]
        with conn.cursor().copy(
            "copy file_chunks (file_id, chunk_index, content, start_char, embedding,"
            " embedding_model, embedding_dims) from stdin"
        ) as copy:
            for i in range(chunks):
                centre = centres[i % len(centres)]
                vector = [c + rng.gauss(0, 0.3) for c in centre]
                copy.write_row(
                    (
                        f"00000000-0000-0000-0000-{1 + i % 1000:012d}",
                        i // 1000,
                        f"chunk {i}",
                        0,
                        "[" + ",".join(f"{x:.5f}" for x in vector) + "]",
                        "bench",
                        DIMS,
                    )
                )
        conn.execute("analyze file_chunks")
        started = time.perf_counter()
        conn.execute("set maintenance_work_mem = '512MB'")
        conn.execute("select ensure_chunk_index('bench', %s)", (DIMS,))
        build = time.perf_counter() - started
        queries = [
            [c + rng.gauss(0, 0.3) for c in centres[rng.randrange(200)]] for _ in range(QUERIES)
        ]

        def search(vector: list[float]) -> tuple[float, list[int]]:
            began = time.perf_counter()
            rows = conn.execute(
                "select chunk_index, file_id from match_file_chunks(%s::extensions.vector, 10,"
                " 'bench')",
                (json.dumps(vector),),
            ).fetchall()
            return time.perf_counter() - began, [hash(r) for r in rows]

        indexed = [search(q) for q in queries]
        index_name = conn.execute(
            "select indexname from pg_indexes where indexname like 'file_chunks_hnsw_%'"
        ).fetchone()
        conn.execute(f"drop index {index_name[0]}")  # the same query, exact
        exact = [search(q) for q in queries]
        recall = statistics.mean(
            len(set(i[1]) & set(e[1])) / 10 for i, e in zip(indexed, exact, strict=True)
        )

        def p(values: list[float], q: float) -> float:
            return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000

        times = [t for t, _ in indexed]
        slow = [t for t, _ in exact]
        print(
            f"{chunks:,} chunks x {DIMS} dimensions; HNSW (m 16, ef_construction 64), ef_search 40"
        )
        print(f"  index build: {build:.1f} s")
        print(f"  query, match_count 10: p50 {p(times, 0.5):.1f} ms, p99 {p(times, 0.99):.1f} ms")
        print(f"  without the index:     p50 {p(slow, 0.5):.1f} ms, p99 {p(slow, 0.99):.1f} ms")
        print(f"  recall@10 against exact search: {recall:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
