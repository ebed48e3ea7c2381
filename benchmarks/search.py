"""Exact Hamming search: ahash_search / ahash_nearest against plain SQL and numpy, one run.

    python benchmarks/search.py                 # 1M rows, 10 companies, embedded server
    python benchmarks/search.py --rows 5000000  # the issue's bar
    python benchmarks/search.py --database-url postgresql://... --rows 10000000

Builds aHash-like clustered data in a scratch database (ahashdb_bench, dropped at the end
unless --keep), bulk-loads it through HashStore.insert_many(bulk=True), then prints p50/p95
per query for each threshold and for top-10, company-scoped and across all companies, for:
ahash_search/ahash_nearest; "plain SQL" (the same rows in a table with only a company_id
B-tree, `bit_count((hash # q)::bit(64)) <= T`, parallel workers allowed); the same plain SQL
on ahashdb's own table; and numpy brute force in this process. Every ahash answer is
compared with the numpy answer: the run fails if any differs. Each engine runs a case's
queries back to back (a busy server); the `idle_wakeup` line shows what a client that pauses
between queries adds to each one on this machine. Beside the times, the work per query
(index entries returned and buffers asked for, from the backend's statistics): the median
of 10 queries, and for each query at or above the p95 its entries / buffers / rows found.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, ms, scratch_database, summary, timed  # noqa: E402

from ahashdb import HashStore  # noqa: E402

THRESHOLDS = (0, 4, 8, 10, 12, 16)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--queries", type=int, default=60, help="queries per case for ahash/numpy")
    ap.add_argument("--plain-queries", type=int, default=12, help="queries per case for plain SQL")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds per case; figures are the medians over rounds")
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    ap.add_argument("--keep", action="store_true", help="keep the ahashdb_bench database")
    args = ap.parse_args()

    url = scratch_database(args.database_url, "ahashdb_bench")
    store = HashStore(url, auto_migrate=True)
    conn = store.connection
    server = conn.execute("SHOW server_version").fetchone()[0]
    print(
        f"PostgreSQL {server}; {args.rows:,} rows, {args.companies} companies, "
        f"{args.queries} queries per case ({args.plain_queries} for plain SQL)"
    )

    t0 = time.perf_counter()
    companies, hashes = datagen.clustered(args.rows, args.companies)
    print(f"data generated in {time.perf_counter() - t0:.1f} s")

    rows = datagen.rows(companies, hashes)
    load_s, added = timed(lambda: store.insert_many(rows, bulk=True))
    print(
        f"insert_many(bulk=True): COPY FREEZE, build indexes, ANALYZE: {added:,} rows"
        f" in {load_s:.1f} s"
        f" = {added / load_s:,.0f} rows/s end to end"
    )

    table_b, index_b = conn.execute(
        "SELECT pg_table_size('image_hashes'), pg_indexes_size('image_hashes')"
    ).fetchone()
    per_index = conn.execute(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index"
        " WHERE indrelid = 'image_hashes'::regclass ORDER BY 1"
    ).fetchall()
    print(
        f"table {table_b / 2**20:.0f} MB; all indexes {index_b / 2**20:.0f} MB"
        f" = {index_b / added:.0f} bytes/row"
    )
    for name, size in per_index:
        print(f"  {name}: {size / added:.0f} bytes/row")

    t_plain, _ = timed(
        lambda: (
            conn.execute("DROP TABLE IF EXISTS plain_hashes"),
            conn.execute("CREATE TABLE plain_hashes AS SELECT company_id, hash FROM image_hashes"),
            conn.execute("CREATE INDEX ON plain_hashes (company_id)"),
            conn.execute("VACUUM ANALYZE plain_hashes"),
        )
    )
    print(f"plain_hashes baseline table built in {t_plain:.1f} s")

    # The stored ids, so numpy answers can be compared with SQL answers exactly.
    got = conn.execute("SELECT id, company_id, hash FROM image_hashes").fetchall()
    ids = np.fromiter((r[0] for r in got), dtype=np.int64, count=len(got))
    comp = np.fromiter((r[1] for r in got), dtype=np.int64, count=len(got))
    hs = np.fromiter((r[2] for r in got), dtype=np.int64, count=len(got)).view(np.uint64)
    del got
    by_company = {c: (ids[comp == c], hs[comp == c]) for c in np.unique(comp).tolist()}

    rng = np.random.default_rng(7)
    qs = datagen.queries(hashes, args.queries, seed=3)
    q_company = rng.integers(1, args.companies + 1, size=args.queries)
    # Queries come from the company's own images, as a company asks about its own uploads.
    for i in range(args.queries):
        c = int(q_company[i])
        pool = by_company[c][1]
        base = pool[rng.integers(0, len(pool))]
        qs[i] = datagen.flip_bits(np.array([base]), np.array([rng.integers(0, 7)]), rng)[0]
    qs_signed = qs.view(np.int64)

    mismatches = 0
    results: list[tuple[str, ...]] = []

    def fetch(query: str, c: int | None, q: int) -> list:
        return conn.execute(query, (c, q)).fetchall()

    # What a query reads, whatever the machine's speed: index entries returned and buffers
    # asked for, from this backend's own statistics inside one transaction (no parallel
    # workers, whose reads these counters do not see).
    work_sql = (
        "SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0),"
        " coalesce(sum(pg_stat_get_xact_blocks_fetched(r.oid)), 0)"
        " FROM pg_class r LEFT JOIN pg_index i ON i.indexrelid = r.oid"
        " WHERE r.relname IN ('image_hashes', 'plain_hashes', 'ahash_chunk_masks')"
        " OR r.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid::regclass::text IN"
        " ('image_hashes', 'plain_hashes', 'ahash_chunk_masks'))")

    def work(query: str, c: int | None, q: int) -> tuple[int, int]:
        with conn.transaction():
            conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            before = conn.execute(work_sql).fetchone()
            conn.execute(query, (c, q)).fetchall()
            after = conn.execute(work_sql).fetchone()
        return int(after[0] - before[0]), int(after[1] - before[1])

    def run_case(
        label: str, company: int | None, ahash_sql: str, plain_sql: str, own_sql: str, numpy_fn
    ) -> None:  # noqa: ANN001
        nonlocal mismatches
        # Each engine runs its queries back to back, as on a busy server: interleaving them
        # query by query would leave PostgreSQL idle while numpy works, and on this kind of
        # virtual machine an idle backend takes ~0.5 ms to wake (see idle_wakeup below).
        # Rounds interleave the engines instead: ahash, plain SQL, ahash, plain SQL, ...;
        # each figure is the median over rounds, each ratio the median of the rounds' ratios.
        picks = [(int(q_company[i]) if company is not None else None, int(qs_signed[i]))
                 for i in range(args.queries)]
        a50s, a95s, p50s, o50s, ratios = [], [], [], [], []
        for _ in range(args.rounds):
            a_t, answers = [], []
            for c, q in picks:
                dt, rows = timed(fetch, ahash_sql, c, q)
                a_t.append(dt)
                answers.append([r[0] for r in rows])
            p_t = [timed(fetch, plain_sql, c, q)[0] for c, q in picks[:args.plain_queries]]
            o_t = [timed(fetch, own_sql, c, q)[0] for c, q in picks[:args.plain_queries]]
            a50, a95 = summary(a_t)
            a50s.append(a50)
            a95s.append(a95)
            p50s.append(summary(p_t)[0])
            o50s.append(summary(o_t)[0])
            ratios.append(p50s[-1] / a50)
        n_t = []
        for i, (c, _) in enumerate(picks):
            dt, expect = timed(numpy_fn, c, qs[i])
            n_t.append(dt)
            if answers[i] != expect:
                mismatches += 1
        found = [len(a) for a in answers]
        a_work = [work(ahash_sql, c, q) for c, q in picks[:10]]
        p_work = [work(plain_sql, c, q) for c, q in picks[:3]]
        # Where the p95 goes: the queries at or above it in the last round, with their work.
        slow = sorted(range(len(a_t)), key=a_t.__getitem__)[int(0.95 * (len(a_t) - 1)):]
        s_work = [work(ahash_sql, *picks[i]) for i in slow]
        a50, a95, p50, o50 = (statistics.median(v) for v in (a50s, a95s, p50s, o50s))
        n50, _ = summary(n_t)
        results.append(
            (
                label,
                f"{ms(a50)} / {ms(a95)}",
                f"{ms(p50)}",
                f"{statistics.median(ratios):.0f}x",
                f"{ms(o50)} ({o50 / a50:.0f}x)",
                f"{ms(n50)}  [{np.median(found):.0f}]",
                f"{statistics.median(w[0] for w in a_work):,.0f} /"
                f" {statistics.median(w[1] for w in a_work):,.0f}",
                f"{statistics.median(w[1] for w in p_work):,.0f}",
                " ".join(f"{w[0]:,}/{w[1]:,}/{found[i]:,}" for i, w in zip(slow, s_work,
                                                                        strict=True)),
            )
        )

    def np_within(t: int):  # noqa: ANN202
        def fn(c, q):  # noqa: ANN001, ANN202
            i_, h_ = by_company[c] if c is not None else (ids, hs)
            d = np.bitwise_count(h_ ^ q)
            sel = np.nonzero(d <= t)[0]
            order = np.lexsort((i_[sel], d[sel]))
            return i_[sel][order].tolist()

        return fn

    def np_limited(t: int, k: int):  # noqa: ANN202
        within = np_within(t)

        def fn(c, q):  # noqa: ANN001, ANN202
            return within(c, q)[:k]

        return fn

    def np_nearest(k: int):  # noqa: ANN202
        def fn(c, q):  # noqa: ANN001, ANN202
            i_, h_ = by_company[c] if c is not None else (ids, hs)
            d = np.bitwise_count(h_ ^ q).astype(np.int64)
            key = d * (1 << 50) + i_
            part = np.argpartition(key, min(k, len(key) - 1))[:k]
            return i_[part][np.argsort(key[part])].tolist()

        return fn

    dist = "bit_count((hash # %s)::bit(64))"
    for scope in ("company", "all"):
        c_where = "company_id = %s AND " if scope == "company" else "%s::bigint IS NULL AND "
        p_where = "company_id = p.c" if scope == "company" else "p.c IS NULL"
        p_dist = "bit_count((hash # p.q)::bit(64))"
        for t in THRESHOLDS:
            run_case(
                f"{scope} T={t}",
                1 if scope == "company" else None,
                f"SELECT id FROM ahash_search(%s, %s, {t})",
                f"SELECT company_id, hash FROM plain_hashes WHERE {c_where}{dist} <= {t}",
                f"SELECT id, meta_id, hash FROM image_hashes WHERE {c_where}{dist} <= {t}",
                np_within(t),
            )
        # A limit bounds the work by the answer (revision 0015), not by the rows within T.
        run_case(
            f"{scope} T=16 limit 10",
            1 if scope == "company" else None,
            "SELECT id FROM ahash_search(%s, %s, 16, 10)",
            f"WITH p AS (SELECT %s::bigint AS c, %s::bigint AS q) SELECT company_id, hash"
            f" FROM plain_hashes, p WHERE {p_where} AND {p_dist} <= 16"
            f" ORDER BY {p_dist}, hash LIMIT 10",
            f"WITH p AS (SELECT %s::bigint AS c, %s::bigint AS q) SELECT id"
            f" FROM image_hashes, p WHERE {p_where} AND {p_dist} <= 16"
            f" ORDER BY {p_dist}, id LIMIT 10",
            np_limited(16, 10),
        )
        run_case(
            f"{scope} top-10",
            1 if scope == "company" else None,
            "SELECT id FROM ahash_nearest(%s, %s, 10)",
            f"SELECT company_id, hash FROM plain_hashes WHERE {c_where}true"
            f" ORDER BY {dist}, hash LIMIT 10",
            f"SELECT id FROM image_hashes WHERE {c_where}true ORDER BY {dist}, id LIMIT 10",
            np_nearest(10),
        )

    # The floor under every figure: one round trip, back to back and after 10 ms idle.
    busy = [timed(fetch, "SELECT %s::bigint, %s::bigint", 1, 1)[0] for _ in range(200)]
    idle = []
    for _ in range(50):
        time.sleep(0.01)
        idle.append(timed(fetch, "SELECT %s::bigint, %s::bigint", 1, 1)[0])
    print(f"idle_wakeup: SELECT 1 round trip {ms(summary(busy)[0])} ms back to back,"
          f" {ms(summary(idle)[0])} ms after 10 ms idle (p50)")

    head = (
        "case",
        "ahash p50 / p95 ms",
        "plain SQL p50",
        "speed-up",
        "plain SQL on own table",
        "numpy p50 [rows]",
        "ahash entries / buffers",
        "plain buffers",
        "p95 queries: entries/buffers/rows",
    )
    widths = [max(len(str(r[i])) for r in [head, *results]) for i in range(len(head))]
    print()
    for r in [head, *results]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    print()

    # 100,000 new rows each, into the fully indexed table: one writer session, then two.
    for n, writers in enumerate((1, 2)):
        fresh = datagen.clustered(100_000, args.companies, seed=11 + n)
        start = args.rows + n * 100_000
        new_rows = datagen.rows(*fresh, first_meta=start)
        ins_s, ins_added = timed(lambda r=new_rows, w=writers: store.insert_many(r, writers=w))
        print(
            f"insert_many(writers={writers}) into the fully indexed table: {ins_added:,} rows"
            f" in {ins_s:.1f} s = {ins_added / ins_s:,.0f} rows/s"
        )
    index_b = conn.execute("SELECT pg_indexes_size('image_hashes')").fetchone()[0]
    total = store.count()
    print(f"all indexes after the incremental load: {index_b / total:.0f} bytes/row")
    print(f"exactness: {mismatches} of {len(results) * args.queries} answers differ from numpy")
    store.close()
    if not args.keep:
        drop_database(url)
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
