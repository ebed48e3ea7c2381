"""Duplicate groups of one company of N rows: time, groups, pairs; against brute force.

    python benchmarks/duplicates.py                    # 1,000,000 rows, T = 0, 2, 4
    python benchmarks/duplicates.py --rows 200000 --thresholds 0 4 8

Bulk-loads N aHash-like clustered rows into one company of a scratch database
(ahashdb_dups, dropped at the end) and times HashStore.duplicates (fetching the company's
hashes, finding every pair within T, connected components, fetching the members) for each
T. The baseline, measured in the same run, is numpy brute force over all pairs of a
20,000-row sample, scaled by (N / 20,000)^2 to N rows; the sample's groups are also
checked against the brute-force answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, scratch_database  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from ahashdb.duplicates import components, pairs_within  # noqa: E402

SAMPLE = 20_000


def brute_labels(values: np.ndarray, t: int) -> tuple[np.ndarray, float]:
    """Component labels by all-pairs comparison, and the seconds it took."""
    start = time.perf_counter()
    a_all, b_all = [], []
    for i in range(0, len(values), 2_000):
        block = np.bitwise_count(values[i:i + 2_000, None] ^ values[None, :]) <= t
        a, b = np.nonzero(block)
        a_all.append(a + i)
        b_all.append(b)
    a, b = np.concatenate(a_all), np.concatenate(b_all)
    keep = a < b
    return components(len(values), a[keep], b[keep]), time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--thresholds", type=int, nargs="+", default=[0, 2, 4])
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    args = ap.parse_args()

    _, hashes = datagen.clustered(args.rows, 1, seed=5)
    url = scratch_database(args.database_url, "ahashdb_dups")
    try:
        with HashStore(url, auto_migrate=True) as store:
            t0 = time.perf_counter()
            store.insert_many(zip(datagen.to_signed(hashes).tolist(), [1] * args.rows,
                                  range(args.rows), strict=True), bulk=True)
            print(f"{args.rows:,} rows in one company, loaded in"
                  f" {time.perf_counter() - t0:.0f} s")
            sample = np.unique(hashes[:SAMPLE])
            print(f"{'T':>3}{'seconds':>10}{'groups':>10}{'rows in groups':>16}"
                  f"{'largest':>9}{'pairs':>13}{'brute force (est.)':>20}{'speed-up':>10}")
            for t in args.thresholds:
                t0 = time.perf_counter()
                sizes = [len(g) for g in store.duplicates(company_id=1, max_distance=t)]
                seconds = time.perf_counter() - t0
                values = np.unique(hashes)
                n_pairs = len(pairs_within(values, t)[0])
                labels, brute_s = brute_labels(sample, t)
                fast = components(len(sample), *pairs_within(sample, t))
                if not np.array_equal(fast, labels):
                    raise SystemExit(f"T={t}: groups of the sample differ from brute force")
                estimate = brute_s * (args.rows / SAMPLE) ** 2
                print(f"{t:>3}{seconds:>10.1f}{len(sizes):>10,}{sum(sizes):>16,}"
                      f"{max(sizes, default=0):>9,}{n_pairs:>13,}{estimate:>19,.0f}s"
                      f"{estimate / seconds:>9,.0f}×")
            print("pairs: between distinct hash values (identical rows add more at distance"
                  " 0); the sample's groups equal brute force for every T")
    finally:
        drop_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
