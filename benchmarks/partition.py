"""Hash-partitioned image_hashes against the plain table, same rows, same queries, one run.

    python benchmarks/partition.py                          # 10M rows, 16 partitions
    python benchmarks/partition.py --rows 1000000 --partitions 8

Loads the same N aHash-like clustered rows (C companies) with insert_many(bulk=True) into
two scratch databases, one plain (ahashdb_plain) and one partitioned by company_id
(ahashdb_part, `HashStore.partition(P)` before the load), then runs the same
company-scoped searches (T=10 and top-10, each query a stored hash with 0–6 bits flipped)
alternately against both, so both see the same cache conditions. Prints load times,
sizes, p50/p95 and the partitioned/plain ratio; every answer of both is compared with
numpy brute force and the run fails on any difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, ms, scratch_database, summary  # noqa: E402

from ahashdb import HashStore  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    ap.add_argument("--keep", action="store_true", help="keep both scratch databases")
    args = ap.parse_args()

    t0 = time.perf_counter()
    companies, hashes = datagen.clustered(args.rows, args.companies)
    signed = datagen.to_signed(hashes)
    print(f"{args.rows:,} rows, {args.companies} companies generated in"
          f" {time.perf_counter() - t0:.0f} s")
    urls = {"plain": scratch_database(args.database_url, "ahashdb_plain"),
            "partitioned": scratch_database(args.database_url, "ahashdb_part")}
    stores = {}
    try:
        for name, url in urls.items():
            store = stores[name] = HashStore(url, auto_migrate=True)
            if name == "partitioned":
                store.partition(args.partitions)
            rows = zip(signed.tolist(), companies.tolist(), range(args.rows), strict=True)
            t0 = time.perf_counter()
            store.insert_many(rows, bulk=True)
            load = time.perf_counter() - t0
            table_b, index_b = store.connection.execute(
                "SELECT sum(pg_table_size(oid)), sum(pg_indexes_size(oid)) FROM pg_class"
                " WHERE oid = 'image_hashes'::regclass"
                " OR oid IN (SELECT inhrelid FROM pg_inherits"
                "            WHERE inhparent = 'image_hashes'::regclass)").fetchone()
            server = store.connection.execute("SHOW server_version").fetchone()[0]
            print(f"{name:<12} {store.partitions():>3} table(s): bulk load {load:.0f} s"
                  f" ({args.rows / load:,.0f} rows/s); table {table_b / 2**20:,.0f} MB,"
                  f" indexes {index_b / 2**20:,.0f} MB ({index_b / args.rows:.0f} B/row);"
                  f" PostgreSQL {server}")

        ids = np.arange(1, args.rows + 1, dtype=np.int64)
        rng = np.random.default_rng(11)
        picks = rng.choice(args.rows, size=args.queries, replace=False)
        flips = rng.integers(0, 7, size=args.queries)
        queries = datagen.flip_bits(hashes[picks], flips, rng)
        times: dict[tuple[str, str], list[float]] = {}
        checked = wrong = 0
        for q, company in zip(queries.tolist(), companies[picks].tolist(), strict=True):
            sel = companies == company
            d = np.bitwise_count(hashes[sel] ^ np.uint64(q)).astype(np.int64)
            cid = ids[sel]
            within = np.nonzero(d <= 10)[0]
            expect_t10 = [(int(d[i]), int(cid[i])) for i in within[np.lexsort(
                (cid[within], d[within]))]]
            order = np.lexsort((cid, d))[:10]
            expect_top = [(int(d[i]), int(cid[i])) for i in order]
            for name, store in stores.items():
                for case, expect in (("T=10", expect_t10), ("top-10", expect_top)):
                    t = time.perf_counter()
                    got = (store.search(q, company_id=company, max_distance=10)
                           if case == "T=10" else store.nearest(q, company_id=company, k=10))
                    times.setdefault((case, name), []).append(time.perf_counter() - t)
                    checked += 1
                    wrong += [(m.distance, m.id) for m in got] != expect
        print(f"\n{args.queries} company-scoped queries per case, alternating between the"
              " two databases")
        print(f"{'case':<8}{'plain p50/p95 ms':>20}{'partitioned p50/p95 ms':>26}"
              f"{'p50 ratio':>11}{'p95 ratio':>11}")
        for case in ("T=10", "top-10"):
            a50, a95 = summary(times[(case, "plain")])
            b50, b95 = summary(times[(case, "partitioned")])
            print(f"{case:<8}{ms(a50) + ' / ' + ms(a95):>20}{ms(b50) + ' / ' + ms(b95):>26}"
                  f"{b50 / a50:>10.2f}×{b95 / a95:>10.2f}×")
        print(f"\nexact: {checked - wrong} of {checked} answers equal numpy brute force")
        return 1 if wrong else 0
    finally:
        for store in stores.values():
            store.close()
        if not args.keep:
            for url in urls.values():
                drop_database(url)


if __name__ == "__main__":
    raise SystemExit(main())
