"""How long `ahashdb migrate` takes on a full table: from an older revision to head.

    python benchmarks/upgrade.py                          # 1M rows, from 0006, embedded
    python benchmarks/upgrade.py --rows 5000000 --from-revision 0006

Builds a scratch database (ahashdb_upgrade, dropped at the end) at ``--from-revision``,
fills it with aHash-like clustered rows by COPY, VACUUM ANALYZE, then times
HashStore.migrate() to head: the time an operator's table stays locked. For comparison it
prints, in the same run, a bulk load of the same rows into a fresh head database
(insert_many(bulk=True)), which rebuilds the same indexes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, scratch_database, timed  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from ahashdb.config import libpq_url  # noqa: E402
from ahashdb.store import SCHEMA_REVISION  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--from-revision", default="0006")
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    args = ap.parse_args()

    companies, hashes = datagen.clustered(args.rows, args.companies)
    signed = datagen.to_signed(hashes).tolist()
    company_list = companies.tolist()

    url = scratch_database(args.database_url, "ahashdb_upgrade")
    try:
        with HashStore(url, auto_migrate=False) as store:
            store.migrate(args.from_revision)
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                with conn.cursor().copy(
                    "COPY image_hashes (company_id, meta_id, hash) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int8", "int8", "int8"])
                    for i, (c, h) in enumerate(zip(company_list, signed, strict=True)):
                        copy.write_row((c, i, h))
                conn.execute("VACUUM ANALYZE image_hashes")
            seconds, _ = timed(store.migrate)
            assert store.schema_revision() == SCHEMA_REVISION
            assert store.count() == args.rows
        print(f"migrate {args.from_revision} -> {SCHEMA_REVISION} with {args.rows:,} rows:"
              f" {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s)")
    finally:
        drop_database(url)

    url = scratch_database(args.database_url, "ahashdb_upgrade")
    try:
        with HashStore(url, auto_migrate=True) as store:
            rows = zip(signed, company_list, range(args.rows), strict=True)
            seconds, added = timed(lambda: store.insert_many(rows, bulk=True))
        print(f"the same rows bulk-loaded into a fresh {SCHEMA_REVISION} database:"
              f" {seconds:.1f} s ({added / seconds:,.0f} rows/s)")
    finally:
        drop_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
