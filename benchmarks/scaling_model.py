"""Project per-shard storage and company-scoped latency to 10^8 and 10^9 rows.

    python benchmarks/scaling_model.py
    python benchmarks/scaling_model.py --shards 64 --workers 8 --company-rows 2000000

Not a measurement: a model fed with figures the other scripts measured on the 2-vCPU
machine (the defaults below; pass your own). Storage is linear in rows (bytes per row of
heap and of all indexes after a bulk load). A company-scoped search touches one shard
(Citus) or one partition, so its latency follows the size of the *company*, not of the
table: it is interpolated (log-log) between the measured (company rows, p50) points and
extrapolated past the last one with the slope of the last segment. An all-companies
search fans out to every shard; its latency is modelled as the slowest shard's, with the
shards of one worker sharing that worker's cores.
"""

from __future__ import annotations

import argparse
import math

# (rows in the company, p50 ms of ahash_search T=10, p50 ms of top-10), from
# benchmarks/search.py at 1M and 5M rows and benchmarks/partition.py at 10M (10 companies).
MEASURED = [(100_000, 7.40, 10.64), (500_000, 12.76, 14.46), (1_000_000, 41.38, 20.58)]
HEAP_BYTES_PER_ROW = 89  # benchmarks/partition.py: 888 MB for 10M rows
INDEX_BYTES_PER_ROW = 239  # all five indexes after insert_many(bulk=True)


def interpolate(rows: float, column: int) -> tuple[float, bool]:
    """(p50 ms for a company of ``rows``, extrapolated?): log-log between measured points."""
    pts = [(math.log(p[0]), math.log(p[column])) for p in MEASURED]
    x = math.log(rows)
    segment = next(((a, b) for a, b in zip(pts, pts[1:], strict=False) if x <= b[0]),
                   (pts[-2], pts[-1]))
    (x0, y0), (x1, y1) = segment
    outside = not pts[0][0] <= x <= pts[-1][0]
    return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0)), outside


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=32)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--company-rows", type=int, default=1_000_000,
                    help="rows of the company being searched (the largest tenant)")
    args = ap.parse_args()
    per_row = HEAP_BYTES_PER_ROW + INDEX_BYTES_PER_ROW
    print(f"model: {per_row} bytes/row ({HEAP_BYTES_PER_ROW} heap + {INDEX_BYTES_PER_ROW}"
          f" indexes); {args.shards} shards on {args.workers} workers;"
          f" searched company of {args.company_rows:,} rows")
    print(f"{'total rows':>14}{'rows/shard':>13}{'GB/shard':>10}{'index GB/shard':>16}"
          f"{'GB/worker':>11}")
    for total in (10**7, 10**8, 10**9):
        shard_rows = total / args.shards
        print(f"{total:>14,}{shard_rows:>13,.0f}{shard_rows * per_row / 2**30:>10.1f}"
              f"{shard_rows * INDEX_BYTES_PER_ROW / 2**30:>16.1f}"
              f"{total * per_row / args.workers / 2**30:>11.1f}")
    print(f"\n{'company rows':>14}{'T=10 p50 ms':>13}{'top-10 p50 ms':>15}")
    for rows in sorted({10**5, 10**6, 10**7, args.company_rows}):
        (t10, out), (top, _) = interpolate(rows, 1), interpolate(rows, 2)
        note = "  (extrapolated)" if out else ""
        print(f"{rows:>14,}{t10:>13.1f}{top:>15.1f}{note}")
    shards_per_worker = math.ceil(args.shards / args.workers)
    print(f"all-companies search: every shard searches its share; with {shards_per_worker}"
          f" shards per worker on 2 cores each, expect about {shards_per_worker / 2:.0f}×"
          " one shard's latency, plus the coordinator's merge.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
