"""Search speed on a database migrated a moment ago, before autovacuum has visited it.

    python benchmarks/fresh.py                     # embedded server
    python benchmarks/fresh.py --rows 20000 --database-url postgresql://...

Creates a scratch database (ahashdb_fresh, dropped at the end), migrates it, stores
``--rows`` random hashes in three companies with insert_many and analyzes them (so that the
plan rule probes the indexes at T = 10 too, and only the masks are fresh), and at once times
ahash_search (median over the queries, each a stored hash, at T = 0, 4, 10) in three
states, all within seconds:

- ``fresh, schema 0008``: downgraded to 0008, whose ahash_search_index read the probe masks
  with ``weight <= radius``;
- ``fresh, head``: upgraded back to head;
- ``vacuumed, head``: after VACUUM ANALYZE of the whole database (the steady state, the
  baseline of the ratios).

Autovacuum can get to a new database within seconds, so the script turns it off for
ahash_chunk_masks and refills that table as migration 0003 left it (filled and analyzed,
no page all-visible); each line shows how many of its pages were all-visible.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import drop_database, ms, scratch_database, timed  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from ahashdb.config import libpq_url  # noqa: E402

THRESHOLDS = (0, 4, 10)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    args = ap.parse_args()

    url = scratch_database(args.database_url, "ahashdb_fresh")
    try:
        rng = random.Random(1)
        rows = [(rng.getrandbits(64) - (1 << 63), 1 + i % 3, i) for i in range(args.rows)]
        with HashStore(url, auto_migrate=False) as store, \
                psycopg.connect(libpq_url(url), autocommit=True) as conn:
            store.migrate()
            store.insert_many(rows)
            picks = rows[:: max(1, len(rows) // args.queries)][: args.queries]
            # Autovacuum can visit a new database within seconds: keep it off the masks and
            # put them back as migration 0003 left them (filled, analyzed, nothing vacuumed).
            conn.execute("ALTER TABLE ahash_chunk_masks SET (autovacuum_enabled = off)")
            conn.execute("TRUNCATE ahash_chunk_masks")
            conn.execute("INSERT INTO ahash_chunk_masks (weight, mask)"
                         " SELECT bit_count(m::bit(16)), m FROM generate_series(0, 65535) AS m")
            conn.execute("ANALYZE ahash_chunk_masks")

            def fresh_masks_and_analyzed_rows() -> None:
                # A migration's own ANALYZE or rewrite may have visited the rows: make it so.
                conn.execute("ANALYZE image_hashes")

            def search(company: int, query: int, t: int) -> list:
                return conn.execute("SELECT id FROM ahash_search(%s, %s, %s)",
                                    (company, query, t)).fetchall()

            def measure(label: str) -> dict[int, float]:
                medians = {}
                for t in THRESHOLDS:
                    times = [timed(search, c, q, t)[0] for q, c, _ in picks]
                    medians[t] = statistics.median(times)
                visible = conn.execute("SELECT relallvisible, relpages FROM pg_class"
                                       " WHERE relname = 'ahash_chunk_masks'").fetchone()
                cells = "  ".join(f"T={t} {ms(medians[t]):>6}" for t in THRESHOLDS)
                print(f"{label:<20} {cells}   masks all-visible pages: {visible[0]}/{visible[1]}")
                return medians

            print(f"{args.rows:,} rows just stored and analyzed; ahash_search p50 ms over"
                  f" {len(picks)} queries")
            store.downgrade("0008")
            fresh_masks_and_analyzed_rows()
            old = measure("fresh, schema 0008")
            store.migrate()
            fresh_masks_and_analyzed_rows()
            new = measure("fresh, head")
            conn.execute("ALTER TABLE ahash_chunk_masks RESET (autovacuum_enabled)")
            conn.execute("VACUUM ANALYZE")
            base = measure("vacuumed, head")
            for label, medians in (("fresh, schema 0008", old), ("fresh, head", new)):
                ratios = "  ".join(f"T={t} {medians[t] / base[t]:.1f}x" for t in THRESHOLDS)
                print(f"{label} / vacuumed: {ratios}")
    finally:
        drop_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
