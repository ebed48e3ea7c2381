"""What each index costs a row-by-row load, and what a second writer session buys.

    python benchmarks/index_cost.py
    python benchmarks/index_cost.py --rows 1000000 --added 100000 --database-url postgresql://...

Copies --rows aHash-like rows into a scratch table shaped like image_hashes, then COPYs
--added more (sorted into primary-key order, in 10,000-row transactions, as insert_many
does) with, in turn: no index; the primary key; the primary key and one chunk index; the
primary key and all four. The last case runs again with the batches split across two
sessions. Each load is deleted and vacuumed away before the next. Prints rows/s per case
and the per-row cost of one chunk index derived from them.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, scratch_database  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from ahashdb.ddl import CHUNK_INDEXES, INDEX_DDL  # noqa: E402
from ahashdb.loading import _COPY_TYPES, _key_order, normalize_rows  # noqa: E402

COPY = ("COPY t (company_id, meta_id, algorithm, hash, source, hasher)"
        " FROM STDIN (FORMAT BINARY)")


def load(url: str, batches: list[list], sessions: int) -> float:
    """Seconds to COPY every batch (one transaction each) over ``sessions`` connections."""
    def work(mine: list[list]) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for batch in mine:
                with conn.transaction(), conn.cursor().copy(COPY) as copy:
                    copy.set_types(_COPY_TYPES)
                    for row in batch:
                        copy.write_row(row)

    threads = [threading.Thread(target=work, args=(batches[k::sessions],))
               for k in range(sessions)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--added", type=int, default=100_000)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    url = scratch_database(args.database_url, "ahashdb_bench_index_cost")
    HashStore(url, auto_migrate=False).migrate()
    companies, hashes = datagen.clustered(args.rows + args.added, 10, seed=11)
    rows = list(zip(datagen.to_signed(hashes).tolist(), companies.tolist(),
                    range(args.rows + args.added), strict=True))
    base = sorted(normalize_rows(rows[:args.rows], "ahash", lambda: 0, False), key=_key_order)
    added = sorted(normalize_rows(rows[args.rows:], "ahash", lambda: 0, False), key=_key_order)
    batches = [added[i:i + 10_000] for i in range(0, len(added), 10_000)]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (LIKE image_hashes INCLUDING DEFAULTS INCLUDING GENERATED"
                     " INCLUDING IDENTITY)")
        load(url, [base], 1)
        conn.execute("VACUUM ANALYZE t")
        print(f"{args.rows:,} rows stored; COPY {args.added:,} more in 10,000-row transactions")
        steps = [
            ("no index", [], 1),
            ("primary key", ["ALTER TABLE t ADD PRIMARY KEY"
                             " (company_id, meta_id, algorithm, hash)"], 1),
            ("primary key + 1 chunk index", [INDEX_DDL[CHUNK_INDEXES[0]].replace(
                "image_hashes", "t")], 1),
            ("primary key + 4 chunk indexes", [
                INDEX_DDL[name].replace("image_hashes", "t") for name in CHUNK_INDEXES[1:]], 1),
            ("the same, 2 writer sessions", [], 2),
        ]
        rate = {}
        for label, ddl, sessions in steps:
            for statement in ddl:
                conn.execute(statement)
            seconds = load(url, batches, sessions)
            rate[label] = args.added / seconds
            print(f"  {label:<32} {rate[label]:>10,.0f} rows/s")
            conn.execute("DELETE FROM t WHERE meta_id >= %s", (args.rows,))
            conn.execute("VACUUM t")
        per_index = (1 / rate["primary key + 4 chunk indexes"] - 1 / rate["primary key"]) / 4
        print(f"one chunk index: {per_index * 1e6:.1f} µs per row; two sessions:"
              f" {rate['the same, 2 writer sessions'] / rate['primary key + 4 chunk indexes']:.2f}×"
              " one")
    drop_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
