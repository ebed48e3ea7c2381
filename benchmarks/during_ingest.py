"""Search latency while a large ingest runs, against the same searches on an idle server.

    python benchmarks/during_ingest.py                # 1M rows, embedded server
    python benchmarks/during_ingest.py --rows 5000000 --writers 2

Bulk-loads N clustered aHash-like rows (10 companies) into a scratch database
(ahashdb_concurrent, dropped at the end), then runs the same company-scoped T=10 searches
(ahash_search, rows fetched) three times: idle; while W writer processes ingest new rows
with HashStore.insert_many in 1,000-row transactions (the CLI's path) into the same
companies; idle again. Prints p50/p95 per phase, their ratio to the first idle phase, the
writers' rows/s, and checks that every search during the ingest found every row that was
there before it (rows only get added).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, ms, scratch_database, summary  # noqa: E402

from ahashdb import HashStore  # noqa: E402


def _writer(url: str, seed: int, companies: int, stop: object, counter: object) -> None:
    rng = np.random.default_rng(seed)
    with HashStore(url) as store:
        meta = 10**12 * (seed + 1)
        while not stop.is_set():  # type: ignore[attr-defined]
            cids, hashes = datagen.clustered(5_000, companies, seed=int(rng.integers(1 << 30)))
            rows = datagen.rows(cids, hashes, first_meta=meta)
            meta += len(cids)
            store.insert_many(rows, batch_size=1_000)
            with counter.get_lock():  # type: ignore[attr-defined]
                counter.value += len(cids)  # type: ignore[attr-defined]


def _phase(store: HashStore, queries: list[tuple[int, int]], before: list[set[int]]) -> list[float]:
    times = []
    for (company, q), ids in zip(queries, before, strict=True):
        t = time.perf_counter()
        found = store.search(q, company_id=company, max_distance=10)
        times.append(time.perf_counter() - t)
        missing = ids - {m.id for m in found}
        if missing:
            raise SystemExit(f"inconsistent: query {q:016x} lost ids {sorted(missing)[:5]}")
    return times


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--writers", type=int, default=1, help="concurrent ingest processes")
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    args = ap.parse_args()

    url = scratch_database(args.database_url, "ahashdb_concurrent")
    try:
        store = HashStore(url, auto_migrate=True)
        companies, hashes = datagen.clustered(args.rows, args.companies)
        rows = datagen.rows(companies, hashes)
        t0 = time.perf_counter()
        store.insert_many(rows, bulk=True)
        server = store.connection.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {server}; {args.rows:,} rows loaded in"
              f" {time.perf_counter() - t0:.1f} s; {args.queries} company-scoped T=10"
              f" searches per phase; {args.writers} writer process(es)")
        rng = np.random.default_rng(7)
        picks = rng.choice(args.rows, size=args.queries, replace=False)
        queries = [(int(companies[i]), int(hashes[i])) for i in picks]
        before = [{m.id for m in store.search(q, company_id=c, max_distance=10)}
                  for c, q in queries]

        idle = _phase(store, queries, before)
        ctx = multiprocessing.get_context("fork")
        stop, counter = ctx.Event(), ctx.Value("q", 0)
        writers = [ctx.Process(target=_writer, args=(url, k, args.companies, stop, counter))
                   for k in range(args.writers)]
        for w in writers:
            w.start()
        time.sleep(2.0)  # let the writers reach a steady state
        start_rows, t_busy = counter.value, time.perf_counter()
        busy = _phase(store, queries, before)
        busy_rate = (counter.value - start_rows) / (time.perf_counter() - t_busy)
        stop.set()
        for w in writers:
            w.join()
        idle2 = _phase(store, queries, before)

        p50_0, p95_0 = summary(idle)
        print(f"{'phase':<22}{'p50 ms':>9}{'p95 ms':>9}{'p50 ×idle':>11}{'p95 ×idle':>11}")
        for name, times in (("idle", idle), ("during ingest", busy), ("idle again", idle2)):
            p50, p95 = summary(times)
            print(f"{name:<22}{ms(p50):>9}{ms(p95):>9}{p50 / p50_0:>11.2f}{p95 / p95_0:>11.2f}")
        print(f"ingest during the busy phase: {busy_rate:,.0f} rows/s"
              f" ({counter.value:,} rows added in all); mean search"
              f" {statistics.mean(busy) * 1000:.2f} ms; every search kept every earlier row")
    finally:
        store.close()
        drop_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
