"""The same rows on one PostgreSQL and on a 2-worker Citus cluster, in one run.

    python benchmarks/citus.py                       # 500,000 rows, 20 companies
    python benchmarks/citus.py --rows 1000000 --companies 40

Needs Citus built into the embedded PostgreSQL (../shared/citus/build.sh PG_CONFIG). Starts
a coordinator and two workers on 127.0.0.1 (tests/citus_cluster.py) and, from the same
binaries with the same settings but without Citus, one plain server. Both get `ahashdb
migrate`; the cluster `ahashdb citus enable`. Then, on both:

- insert_many of the same aHash-like clustered rows (the default load path), rows/s;
- company-scoped T=10, T=4 and top-10 searches, and all-companies T=10, alternating between
  the two so both see the same cache conditions: p50/p95 and cluster/plain ratios; every
  answer is compared with numpy brute force (the run fails on a difference);
- the delegation round trip: a company's T=4 search sent to the coordinator (delegated to
  the worker) against the same call made on that worker directly;
- throughput of company-scoped T=10 searches from 1 and from 8 clients.

The machine has 2 cores for all four servers and the client, so the figures show Citus's
overhead, not its scale-out: read the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datagen  # noqa: E402
from _common import ms, summary  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from tests import citus_cluster  # noqa: E402


def brute(hashes: np.ndarray, companies: np.ndarray, q: int, company: int | None,
          t: int | None, k: int | None) -> list[tuple[int, int]]:
    """(distance, meta_id) of the answer, nearest first (meta_id = row number)."""
    sel = np.ones(len(hashes), bool) if company is None else companies == company
    d = np.bitwise_count(hashes[sel] ^ np.uint64(q)).astype(np.int64)
    meta = np.nonzero(sel)[0]
    order = np.lexsort((meta, d))
    if t is not None:
        order = order[d[order] <= t]
    if k is not None:
        order = order[:k]
    return [(int(d[i]), int(meta[i])) for i in order]


def same_answer(got: list[tuple[int, int]], expect: list[tuple[int, int]],
                top_k: bool) -> bool:
    """Rows at equal distance come in id order, and ids follow the load's writers, not
    meta_id: compare sets of (distance, meta_id); for top-k, the distances, and the rows
    nearer than the k-th (at the k-th distance any of the tied rows may be chosen)."""
    if not top_k:
        return sorted(got) == sorted(expect)
    if [d for d, _ in got] != [d for d, _ in expect]:
        return False
    last = expect[-1][0] if expect else 0
    return {r for r in got if r[0] < last} == {r for r in expect if r[0] < last}


def throughput(url: str, jobs: list[tuple[int, int]], clients: int) -> float:
    """Company-scoped T=10 searches per second from ``clients`` threads, each with its own
    connection, splitting ``jobs`` between them."""
    stores = [HashStore(url) for _ in range(clients)]
    for s in stores:
        s.connection  # noqa: B018 - connect before the clock starts
    start = threading.Barrier(clients + 1)

    def run(store: HashStore, part: list[tuple[int, int]]) -> None:
        start.wait()
        for q, company in part:
            store.search(q, company_id=company, max_distance=10)

    threads = [threading.Thread(target=run, args=(s, jobs[i::clients]))
               for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for s in stores:
        s.close()
    return len(jobs) / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--companies", type=int, default=20)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--shards", type=int, default=32)
    args = ap.parse_args()

    if citus_cluster.installed_bindir() is None:
        print(citus_cluster.missing_reason(), file=sys.stderr)
        return 2
    companies, hashes = datagen.clustered(args.rows, args.companies)
    signed = datagen.to_signed(hashes)
    cluster = citus_cluster.CitusCluster.create(workers=2)
    try:
        plain = cluster.plain_server()
        urls = {"plain": plain.url(), "citus": cluster.url()}
        stores = {name: HashStore(url) for name, url in urls.items()}
        stores["plain"].migrate()
        stores["citus"].migrate()
        stores["citus"].distribute(args.shards)
        server = stores["plain"].connection.execute("SHOW server_version").fetchone()[0]
        print(f"{args.rows:,} rows, {args.companies} companies; PostgreSQL {server} on one"
              f" server, and with Citus {stores['citus'].citus_status()['citus']} on a"
              f" coordinator + 2 workers ({args.shards} shards); 127.0.0.1, 2 vCPUs\n")

        load = {}
        for name, store in stores.items():
            rows = zip(signed.tolist(), companies.tolist(), range(args.rows), strict=True)
            t0 = time.perf_counter()
            store.insert_many(rows)
            load[name] = args.rows / (time.perf_counter() - t0)
            store.connection.execute("ANALYZE image_hashes")
        per_node = stores["citus"].stats()["citus_rows_per_node"]
        print("rows per worker: " + ", ".join(f"{n:,}" for n in per_node.values()))

        rng = np.random.default_rng(11)
        picks = rng.choice(args.rows, size=args.queries, replace=False)
        queries = datagen.flip_bits(hashes[picks], rng.integers(0, 7, size=args.queries), rng)
        cases = {
            "company, T=10": lambda s, q, c: s.search(q, company_id=c, max_distance=10),
            "company, T=4": lambda s, q, c: s.search(q, company_id=c, max_distance=4),
            "company, top-10": lambda s, q, c: s.nearest(q, company_id=c, k=10),
            "all companies, T=10": lambda s, q, c: s.search(q, all_companies=True,
                                                            max_distance=10),
        }
        params = {"company, T=10": (10, None), "company, T=4": (4, None),
                  "company, top-10": (None, 10), "all companies, T=10": (10, None)}
        times: dict[tuple[str, str], list[float]] = {}
        checked = wrong = 0
        for q, company in zip(queries.tolist(), companies[picks].tolist(), strict=True):
            for case, fn in cases.items():
                scope = None if case.startswith("all") else company
                expect = brute(hashes, companies, q, scope, *params[case])
                for name, store in stores.items():
                    t0 = time.perf_counter()
                    got = fn(store, q, company)
                    times.setdefault((case, name), []).append(time.perf_counter() - t0)
                    checked += 1
                    wrong += not same_answer([(m.distance, m.meta_id) for m in got], expect,
                                             params[case][1] is not None)

        print(f"\n{args.queries} queries per case (stored hashes with 0-6 bits flipped),"
              " alternating between the two")
        print(f"{'case':<22}{'one server p50 / p95 ms':>25}{'Citus p50 / p95 ms':>22}"
              f"{'p50 ratio':>11}{'p95 ratio':>11}")
        for case in cases:
            a50, a95 = summary(times[(case, "plain")])
            b50, b95 = summary(times[(case, "citus")])
            print(f"{case:<22}{ms(a50) + ' / ' + ms(a95):>25}{ms(b50) + ' / ' + ms(b95):>22}"
                  f"{b50 / a50:>10.2f}×{b95 / a95:>10.2f}×")
        print(f"{'insert_many, rows/s':<22}{load['plain']:>25,.0f}{load['citus']:>22,.0f}"
              f"{load['citus'] / load['plain']:>10.2f}×")

        # The delegation hop: the same T=4 calls through the coordinator and on the worker.
        company = int(companies[picks[0]])
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            owner = conn.execute(
                "SELECT nodeport FROM citus_shards WHERE shardid ="
                " get_shard_id_for_distribution_column('image_hashes', %s)",
                (company,)).fetchone()[0]
        worker = next(w for w in cluster.workers if w.port == owner)
        hop: dict[str, list[float]] = {"coordinator": [], "worker": []}
        statement = "SELECT * FROM ahash_search(%s, %s, %s, %s, %s::ahash_algorithm)"
        with psycopg.connect(cluster.url(), autocommit=True) as via, \
                psycopg.connect(worker.url(), autocommit=True) as direct:
            for q in datagen.to_signed(queries).tolist() * 2:
                for name, conn in (("coordinator", via), ("worker", direct)):
                    t0 = time.perf_counter()
                    conn.execute(statement, (company, q, 4, None, "ahash")).fetchall()
                    hop[name].append(time.perf_counter() - t0)
        c50, w50 = statistics.median(hop["coordinator"]), statistics.median(hop["worker"])
        print(f"\ndelegated T=4 call, company {company}: through the coordinator"
              f" {ms(c50)} ms, on its worker directly {ms(w50)} ms (p50; {c50 / w50:.2f}×,"
              f" the hop costs {ms(c50 - w50)} ms)")

        jobs = list(zip(queries.tolist(), companies[picks].tolist(), strict=True)) * 4
        print("\ncompany-scoped T=10 searches per second")
        for clients in (1, 8):
            rate = {name: throughput(url, jobs, clients) for name, url in urls.items()}
            print(f"  {clients} client{'s' if clients > 1 else ' '}: one server"
                  f" {rate['plain']:,.0f}/s, Citus {rate['citus']:,.0f}/s"
                  f" ({rate['citus'] / rate['plain']:.2f}×)")
        print(f"\nexact: {checked - wrong} of {checked} answers equal numpy brute force")
        for store in stores.values():
            store.close()
        return 1 if wrong else 0
    finally:
        cluster.destroy()


if __name__ == "__main__":
    raise SystemExit(main())
