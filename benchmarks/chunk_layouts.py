"""How many chunk-index entries a search reads under other index layouts (a model, no server).

    python benchmarks/chunk_layouts.py                       # 5M clustered rows, T=10
    python benchmarks/chunk_layouts.py --rows 1000000 --threshold 12

A search by multi-index hashing probes each chunk's index for the values within that
chunk's radius of the query's chunk, and reads every index entry it finds there; on
clustered data those entries, not the probes, are most of a search's time (see
docs/how-search-works.md). This script counts them exactly, in numpy, on the search
benchmark's clustered data (``benchmarks/datagen.py``, the same rows ``search.py`` loads),
for the same kind of queries (stored hashes with 0-6 bits flipped), across all companies
and within company 1:

- the layout in use: four 16-bit chunks dealt as ``ahashdb.ddl.CHUNK_TERMS`` says, with the
  radii ``ahash_chunk_radii`` gives;
- the same chunks with the radii chosen per query by an oracle that knows every entry
  count in advance (the most any per-query choice of radii could save);
- other ways of dealing the 64 bits into four chunks (whole rows, as before schema 0007;
  the best of 30 random dealings);
- three chunks of 22/21/21 bits and five of 14/13/13/12/12, each cell (r, c) in chunk
  (r + c) mod m, the way the chunks in use are spread.

Each line gives the median and p90 of index entries read per query and the probes (B-tree
descents) per query; counts do not move with the machine's noise. "model ms" prices them
at --entry-us and --probe-us (a model, not a measurement: the oracle's probes are its
median query's).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from math import comb
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datagen  # noqa: E402

from ahashdb.ddl import CHUNK_TERMS, chunk_values  # noqa: E402

Layout = list[list[int]]  # chunk -> the hash bit (0 = least significant) of each chunk bit


def layout_in_use() -> Layout:
    """The chunk bits of ``CHUNK_TERMS``: chunk bit j of term (shift, mask) is hash bit
    j + shift."""
    out = []
    for terms in CHUNK_TERMS:
        bits: dict[int, int] = {}
        for shift, mask in terms:
            for j in range(16):
                if mask >> j & 1:
                    bits[j] = j + shift
        out.append([bits[j] for j in range(16)])
    return out


def dealt(cell_chunk, m: int) -> Layout:  # noqa: ANN001
    """m chunks of grid cells, the largest first: cell (row r, column c), hash bit
    63 - 8r - c, goes to chunk ``cell_chunk(r, c)``."""
    out: Layout = [[] for _ in range(m)]
    for b in range(64):
        r, c = divmod(b, 8)
        out[cell_chunk(r, c)].append(63 - b)
    return sorted(out, key=len, reverse=True)


def chunk_columns(hashes: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """Each chunk's value for every hash (uint64 in, int64 out)."""
    cols = []
    for bits in layout:
        v = np.zeros(hashes.shape, dtype=np.int64)
        for j, b in enumerate(bits):
            v |= ((hashes >> np.uint64(b)) & np.uint64(1)).astype(np.int64) << j
        cols.append(v)
    return cols


def radii(t: int, m: int) -> list[int]:
    """``ahash_chunk_radii`` for m chunks: radii summing to t + 1 - m, the larger first."""
    return [(t + 1) // m + (1 if i < (t + 1) % m else 0) - 1 for i in range(m)]


class Counter:
    """Entries a query reads in each chunk's index at each radius, from the histograms."""

    def __init__(self, hashes: np.ndarray, queries: np.ndarray, layout: Layout,
                 max_radius: int) -> None:
        self.sizes = [len(b) for b in layout]
        cols, qcols = chunk_columns(hashes, layout), chunk_columns(queries, layout)
        # per_radius[i][w][k]: entries of query k whose chunk i differs in exactly w bits
        self.per_radius = []
        for size, col, qcol in zip(self.sizes, cols, qcols, strict=True):
            hist = np.bincount(col, minlength=1 << size)
            rows = []
            for w in range(max_radius + 1):
                masks = np.array([sum(1 << b for b in c)
                                  for c in itertools.combinations(range(size), w)])
                rows.append(hist[qcol[:, None] ^ masks[None, :]].sum(axis=1))
            self.per_radius.append(np.array(rows))

    def entries(self, rad: list[int]) -> np.ndarray:
        return sum(self.per_radius[i][: r + 1].sum(axis=0)
                   for i, r in enumerate(rad) if r >= 0)

    def probes(self, rad: list[int]) -> int:
        return sum(sum(comb(s, w) for w in range(r + 1)) for s, r in zip(self.sizes, rad,
                                                                          strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--entry-us", type=float, default=0.15,
                    help="model: microseconds per index entry read (0.13-0.18 measured by"
                    " benchmarks/search_split.py)")
    ap.add_argument("--probe-us", type=float, default=3.0,
                    help="model: microseconds per probe (a B-tree descent; 3-7 us measured,"
                    " see docs/benchmarks.md)")
    args = ap.parse_args()
    t = args.threshold

    companies, hashes = datagen.clustered(args.rows, args.companies)
    in_use = layout_in_use()
    cols = chunk_columns(hashes[:100], in_use)  # the generated columns' values
    assert all(tuple(int(c[k]) for c in cols) == chunk_values(int(hashes[k])) for k in range(100))
    rng = np.random.default_rng(3)
    print(f"{args.rows:,} clustered rows, {args.companies} companies, {args.queries} queries"
          f" per scope (stored hashes, 0-6 bits flipped), T={t}")
    one = hashes[companies == 1]
    for scope, rows in (("all companies", hashes), ("one company", one)):
        queries = datagen.flip_bits(rows[rng.integers(0, len(rows), args.queries)],
                                    rng.integers(0, 7, args.queries), rng)
        compare(scope, rows, queries, in_use, args)
    return 0


def compare(scope: str, hashes: np.ndarray, queries: np.ndarray, in_use: Layout,
            args: argparse.Namespace) -> None:
    """Print one scope's table: entries and probes per layout."""
    t = args.threshold
    answers = np.array([int((np.bitwise_count(hashes ^ q) <= t).sum()) for q in queries[:60]])
    print()
    print(f"{scope}: {len(hashes):,} rows; median answer {np.median(answers):,.0f} rows"
          f" (of the first {len(answers)} queries)")
    print(f"{'layout':54s} {'entries p50':>12s} {'p90':>12s} {'probes':>8s} {'model ms':>9s}")

    def line(name: str, e: np.ndarray, probes: int) -> None:
        model = (np.median(e) * args.entry_us + probes * args.probe_us) / 1000
        print(f"{name:54s} {np.median(e):12,.0f} {np.percentile(e, 90):12,.0f}"
              f" {probes:8,} {model:9.1f}")

    now = Counter(hashes, queries, in_use, max_radius=radii(t, 4)[0] + 2)
    r_now = radii(t, 4)
    base = now.entries(r_now)
    line(f"4 x 16 bits, in use, radii {r_now}", base, now.probes(r_now))

    # The oracle: every radii vector that keeps the search exact (sum of r+1 = T+1, a
    # chunk may be skipped with r = -1), the cheapest for each query by entries + probes.
    top = now.per_radius[0].shape[0] - 1
    vectors = [list(v) for v in itertools.product(range(-1, top + 1), repeat=4)
               if sum(x + 1 for x in v) == t + 1]
    per_probe = args.probe_us / args.entry_us
    cost = np.array([now.entries(v) + per_probe * now.probes(v) for v in vectors])
    pick = cost.argmin(axis=0)
    chosen = np.array([now.entries(vectors[p])[k] for k, p in enumerate(pick)])
    probes = [now.probes(vectors[p]) for p in pick]
    line("4 x 16 bits, radii per query by an oracle", chosen, int(np.median(probes)))

    rows = Counter(hashes, queries, dealt(lambda r, c: r // 2, 4), r_now[0])
    line("4 x 16 bits, two whole grid rows each (<= 0006)", rows.entries(r_now),
         rows.probes(r_now))
    best = None
    for seed in range(30):
        perm = np.random.default_rng(100 + seed).permutation(64)
        lay = [[int(b) for b in perm[k * 16:(k + 1) * 16]] for k in range(4)]
        e = Counter(hashes, queries, lay, r_now[0]).entries(r_now)
        if best is None or np.median(e) < np.median(best):
            best = e
    line("4 x 16 bits, best of 30 random dealings", best, now.probes(r_now))

    for m in (3, 5):
        r_m = radii(t, m)
        lay = dealt(lambda r, col, m=m: (r + col) % m, m)
        c = Counter(hashes, queries, lay, r_m[0])
        line(f"{m} chunks of {'/'.join(str(len(b)) for b in lay)} bits, radii {r_m}",
             c.entries(r_m), c.probes(r_m))


if __name__ == "__main__":
    raise SystemExit(main())
