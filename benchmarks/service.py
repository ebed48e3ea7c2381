"""The HTTP service against HashStore directly: search by hash and upload check-and-insert.

    python benchmarks/service.py                       # 100,000 rows, 8 clients, embedded
    python benchmarks/service.py --clients 16 --requests 200

A scratch database (ahashdb_bench_service, dropped at the end) holds clustered rows of one
company; `ahashdb serve` runs on 127.0.0.1 as an application role under strict row-level
security, and N client threads send a bounded number of requests each. The same operations
then run through HashStore from N threads (each with its own connection, no HTTP, no key
check). Printed: requests/s, p50 and p99, and errors, which must be 0. Upload bodies are
small JPEGs made here (many are near-duplicates of stored rows, as real uploads are); the
search queries are stored hashes with a few bits flipped. An upload counts as an error only
when it is not answered 200 (a near-duplicate refused is an answer).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
import httpx  # noqa: E402
from _common import drop_database, ms, pct, scratch_database  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from tests.imagegen import encode, photo  # noqa: E402


def run_clients(n: int, per_client: int, call) -> tuple[float, list[float], int]:  # noqa: ANN001
    """(seconds, latencies, errors) of ``n`` threads each making ``per_client`` calls."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(n + 1)

    def client(k: int) -> None:
        nonlocal errors
        state = call("open", k, 0)
        barrier.wait()
        for i in range(per_client):
            t = time.perf_counter()
            ok = call(state, k, i)
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                errors += not ok
        call(("close", state), k, 0)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, errors


def report(name: str, seconds: float, latencies: list[float], errors: int) -> None:
    print(f"{name:<34} {len(latencies) / seconds:9,.0f} req/s   p50 {ms(pct(latencies, 0.5))}"
          f" ms   p99 {ms(pct(latencies, 0.99))} ms   errors {errors}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=100, help="per client and operation")
    args = ap.parse_args()

    url = scratch_database(args.database_url, "ahashdb_bench_service")
    try:
        owner = HashStore(url)
        owner.migrate()
        _, hashes = datagen.clustered(args.rows, companies=1, seed=11)
        owner.insert_many(((int(h), 1, i) for i, h in enumerate(hashes)), bulk=True)
        role = "ahashdb_bench_app"
        owner.create_application_role(role, "bench")
        owner.enable_strict_row_level_security()
        key = owner.create_key(1, "bench")
        app_url = make_url(url).set(username=role, password="bench").render_as_string(False)
        queries = [f"{int(q):016x}" for q in
                   datagen.queries(hashes, args.clients * args.requests, seed=5)]
        uploads = [encode(photo(1000 + i, (96, 72)), "JPEG", quality=85)
                   for i in range(2 * args.clients * args.requests)]

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "ahashdb", "serve", "--port",
                                   str(port)], env={**os.environ, "AHASHDB_DATABASE_URL": app_url},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        print(f"{args.rows:,} rows; {args.clients} clients x {args.requests} requests each;"
              f" server {base}, strict row-level security")
        try:
            headers = {"Authorization": f"Bearer {key}"}

            def http_search(state, k, i):  # noqa: ANN001, ANN202
                if state == "open":
                    return httpx.Client(base_url=base, headers=headers, timeout=30)
                if isinstance(state, tuple):
                    return state[1].close()
                r = state.get("/v1/search", params={"hash": queries[k * args.requests + i]})
                return r.status_code == 200

            def http_upload(state, k, i):  # noqa: ANN001, ANN202
                if state == "open":
                    return httpx.Client(base_url=base, headers=headers, timeout=30)
                if isinstance(state, tuple):
                    return state[1].close()
                n = k * args.requests + i
                r = state.post("/v1/images", params={"meta_id": 10_000_000 + n},
                               files={"file": ("u.jpg", uploads[n], "image/jpeg")})
                return r.status_code == 200  # stored, or refused as a near-duplicate

            def direct_search(state, k, i):  # noqa: ANN001, ANN202
                if state == "open":
                    return HashStore(url)
                if isinstance(state, tuple):
                    return state[1].close()
                state.search(queries[k * args.requests + i], company_id=1)
                return True

            def direct_upload(state, k, i):  # noqa: ANN001, ANN202
                if state == "open":
                    return HashStore(url)
                if isinstance(state, tuple):
                    return state[1].close()
                n = args.clients * args.requests + k * args.requests + i
                state.insert_if_new(uploads[n], company_id=1, meta_id=20_000_000 + n)
                return True

            results = {}
            for name, fn in (("HTTP GET /v1/search", http_search),
                             ("HashStore.search", direct_search),
                             ("HTTP POST /v1/images (if-new)", http_upload),
                             ("HashStore.insert_if_new (image)", direct_upload)):
                results[name] = run_clients(args.clients, args.requests, fn)
                report(name, *results[name])
            for http, direct in (("HTTP GET /v1/search", "HashStore.search"),
                                 ("HTTP POST /v1/images (if-new)",
                                  "HashStore.insert_if_new (image)")):
                h, d = results[http], results[direct]
                print(f"{http}: {len(h[1]) / h[0] / (len(d[1]) / d[0]):.2f}x the throughput"
                      f" of {direct}")
            # Check-and-inserts that do not conflict (random, unrelated hashes): how far they
            # scale from one session to N, since only near-identical ones should wait.
            unrelated = iter(range(10**9))

            def direct_unrelated(state, k, i):  # noqa: ANN001, ANN202
                if state == "open":
                    return HashStore(url)
                if isinstance(state, tuple):
                    return state[1].close()
                n = next(unrelated)
                h = (n * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & ((1 << 64) - 1)
                state.insert_if_new(h, company_id=1, meta_id=30_000_000 + n, max_distance=10)
                return True

            one = run_clients(1, args.requests * 2, direct_unrelated)
            report("insert_if_new, unrelated, 1 session", *one)
            many = run_clients(args.clients, args.requests, direct_unrelated)
            report(f"insert_if_new, unrelated, {args.clients} sessions", *many)
            print(f"unrelated check-and-inserts: {args.clients} sessions"
                  f" {len(many[1]) / many[0] / (len(one[1]) / one[0]):.2f}x one session")
            errors = sum(r[2] for r in results.values()) + one[2] + many[2]
        finally:
            server.terminate()
            server.wait(30)
        owner.disable_row_level_security()
        owner.close()
        return 0 if errors == 0 else 1
    finally:
        import psycopg
        from psycopg import sql

        from ahashdb.config import libpq_url

        drop_database(url)
        with psycopg.connect(libpq_url(make_url(url).set(database="postgres")
                                       .render_as_string(False)), autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(
                "ahashdb_bench_app")))


if __name__ == "__main__":
    raise SystemExit(main())
