"""HashStore.insert_many throughput and the loading process's peak memory.

    python benchmarks/insert.py                  # 1,000,000 rows, embedded server
    python benchmarks/insert.py --rows 5000000 --database-url postgresql://...

Each case runs in its own process (so peak RSS is that case's alone) on a fresh scratch
database, streaming precomputed aHash-like hashes (never a list of all rows):
  core  -- the head schema with the four chunk indexes dropped: the primary key only (the
           core issue's bar)
  full  -- the head schema, with the four chunk indexes of the search: insert_many(rows) as
           a user calls it, no options (into this empty table, more than 100,000 rows:
           the bulk path, chosen by itself)
  batch -- the same with bulk=False: batches, writers chosen from the machine and the load
           (what a load into a table that already holds rows gets)
  full1 -- batches with writers=1 (one session), the baseline
  full2 -- batches with writers=2: two sessions writing batches at once
  bulk  -- the head schema, insert_many(bulk=True): load bare, build indexes, one transaction
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, scratch_database  # noqa: E402

from ahashdb import HashStore  # noqa: E402


def stream(hashes: np.ndarray, companies: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(hash, company_id, meta_id) rows as Python ints, converted 100,000 at a time."""
    signed = datagen.to_signed(hashes)
    for start in range(0, len(hashes), 100_000):
        end = min(start + 100_000, len(hashes))
        yield from zip(signed[start:end].tolist(), companies[start:end].tolist(),
                       range(start, end), strict=True)


def run_case(mode: str, rows: int, companies: int, url: str | None) -> dict:
    db = scratch_database(url, f"ahashdb_bench_insert_{mode}")
    store = HashStore(db, auto_migrate=False)
    store.migrate()
    if mode == "core":
        for i in range(4):
            store.connection.execute(f"DROP INDEX image_hashes_c{i}_idx")
    # The data exists before the clock starts (16 bytes a row as numpy arrays); the rows
    # themselves are made on the fly, as an application streaming from elsewhere would.
    parts = [datagen.clustered(min(100_000, rows - i), companies, seed=5 + i)
             for i in range(0, rows, 100_000)]
    comp = np.concatenate([p[0] for p in parts])
    hashes = np.concatenate([p[1] for p in parts])
    del parts
    t = time.perf_counter()
    options = {"full": {}, "batch": {"bulk": False}, "full1": {"bulk": False, "writers": 1},
               "full2": {"bulk": False, "writers": 2}, "bulk": {"bulk": True},
               "core": {"bulk": False, "writers": 1}}[mode]
    added = store.insert_many(stream(hashes, comp), **options)
    seconds = time.perf_counter() - t
    index_bytes = store.connection.execute(
        "SELECT pg_indexes_size('image_hashes')").fetchone()[0]
    store.close()
    drop_database(db)
    return {"mode": mode, "rows": added, "seconds": seconds, "rows_per_s": added / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "index_bytes_per_row": index_bytes / max(added, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--mode", choices=("core", "full", "batch", "full1", "full2", "bulk"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--modes", default="core,full1,full2,batch,full,bulk")
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(run_case(args.mode, args.rows, args.companies, args.database_url)))
        return 0
    print(f"insert_many of {args.rows:,} precomputed hashes, {args.companies} companies")
    print(f"{'case':<6} {'rows/s':>10} {'seconds':>8} {'peak RSS MB':>12} {'index B/row':>12}")
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--mode", mode, "--rows", str(args.rows),
               "--companies", str(args.companies)]
        if args.database_url:
            cmd += ["--database-url", args.database_url]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{mode:<6} {r['rows_per_s']:>10,.0f} {r['seconds']:>8.1f} {r['peak_rss_mb']:>12.0f}"
              f" {r['index_bytes_per_row']:>12.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
