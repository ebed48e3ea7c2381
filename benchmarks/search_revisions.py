"""An earlier revision's ahash_search_index against the head revision's, interleaved.

    python benchmarks/search_revisions.py                  # 0016 against head, 1M rows
    python benchmarks/search_revisions.py --against 0015 --rows 5000000

Loads --rows clustered rows in --companies companies into a scratch database at the head
revision, installs the --against revision's ``ahash_search_index`` beside the head's under
another name (its SQL text, as that migration holds it), and times both on the same stored
hashes as queries (--queries of them, which makes the answers larger than the search
benchmark's perturbed queries: the case where the fetch matters), each query --runs times
per version, alternating which goes first. Checks that both return the same rows in the
same order, and prints per case the median and p95 of the per-query medians, and the mean
over the queries with the largest tenth of answers. Both versions see the same data, the
same buffers and the same noise, so their ratio holds where absolute figures drift.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import clustered_database, stored_queries  # noqa: E402

from ahashdb.connection import SCHEMA_REVISION  # noqa: E402
from ahashdb.migrating import earlier_migration  # noqa: E402

VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"


def earlier_search(revision: str) -> str:
    """The CREATE FUNCTION text of ahash_search_index as migration ``revision`` wrote it,
    renamed ahash_search_index_<revision>."""
    for rev in sorted((p.name for p in VERSIONS.glob("[0-9]*.py")), reverse=True):
        if rev[:4] > revision:
            continue
        module = earlier_migration(str(VERSIONS / rev), rev)
        text = getattr(module, "AHASH_SEARCH_INDEX", None)
        if text is not None:
            name = f"ahash_search_index_{revision}"
            return (text.replace("FUNCTION ahash_search_index(", f"FUNCTION {name}(")
                        .replace("ahash_search_index.algorithm", f"{name}.algorithm"))
    raise SystemExit(f"no migration up to {revision} defines ahash_search_index")


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * len(values))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="0016", help="the earlier revision (default 0016)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--runs", type=int, default=4, help="runs of each version per query")
    ap.add_argument("--thresholds", default="10,12")
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    args = ap.parse_args()

    old, new = f"ahash_search_index_{args.against}", "ahash_search_index"
    with clustered_database(args.database_url, "ahashdb_bench_revisions", args.rows,
                            args.companies) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(earlier_search(args.against))
        queries = stored_queries(conn, args.queries)
        print(f"{args.rows:,} rows, {args.companies} companies, {len(queries)} stored hashes"
              f" as queries, {args.runs} runs of each per query;"
              f" revision {args.against} -> {SCHEMA_REVISION}")

        def run(fn: str, q: int, company: int | None, t: int) -> tuple[float, list]:
            start = time.perf_counter()
            got = conn.execute(f"SELECT * FROM {fn}(%s, %s, %s, NULL, 'ahash')",
                               (company, q, t)).fetchall()
            return time.perf_counter() - start, got

        for t in (int(x) for x in args.thresholds.split(",")):
            for scope in ("company", "all"):
                before, after, sizes = [], [], []
                for q, company in queries:
                    cid = company if scope == "company" else None
                    times: dict[str, list[float]] = {old: [], new: []}
                    answers = {}
                    for k in range(args.runs):
                        for fn in ((old, new) if k % 2 else (new, old)):
                            seconds, answers[fn] = run(fn, q, cid, t)
                            times[fn].append(seconds * 1000)
                    if answers[old] != answers[new]:
                        raise SystemExit(f"answers differ: query {q}, company {cid}, T={t}")
                    before.append(statistics.median(times[old]))
                    after.append(statistics.median(times[new]))
                    sizes.append(len(answers[new]))
                cut = sorted(sizes)[int(0.9 * len(sizes))]
                big = [i for i, n in enumerate(sizes) if n >= cut]
                big_before = statistics.mean(before[i] for i in big)
                big_after = statistics.mean(after[i] for i in big)
                print(f"T={t:<2} {scope:7}  p50 {statistics.median(before):7.2f} ->"
                      f" {statistics.median(after):7.2f} ms   p95 {p95(before):7.2f} ->"
                      f" {p95(after):7.2f} ms   largest tenth of answers (mean"
                      f" {statistics.mean(sizes[i] for i in big):,.0f} rows):"
                      f" {big_before:7.2f} -> {big_after:7.2f} ms"
                      f" ({big_after / big_before:.2f}x the time)")
        print("answers: identical in every run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
