"""Where a search's time goes: its probes (candidates found, distance checked) against the
fetch of its answer rows.

    python benchmarks/search_split.py                      # 1M rows, T=10
    python benchmarks/search_split.py --rows 5000000

Loads --rows clustered rows in --companies companies into a scratch database at the head
revision, and installs beside ``ahash_search_index`` a copy of it that stops after its
probes: the same SQL text (the head migration's), each branch's final fetch replaced by
``count(*)`` of its candidates. For --queries stored hashes, company-scoped and across all
companies, it times both server-side (``count(*)`` over the search, so no rows travel),
--runs times each, alternating which goes first, and counts the chunk-index entries the
probes read (the backend's statistics). The candidates counted must equal the rows the
search returns. Prints the medians of the per-query medians: the whole search, the
probes, the rest (the fetch, the sort and the function's result), and their unit costs:
the probes' time per index entry they read (the descents and the call included) and the
rest's time per answer row (over the queries with at least 100 rows).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import clustered_database, stored_queries  # noqa: E402
from search_revisions import earlier_search  # noqa: E402

from ahashdb.connection import SCHEMA_REVISION  # noqa: E402

PROBES = "ahash_search_probes"
ENTRIES = ("SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index"
           " WHERE indexrelid::regclass::text LIKE 'image_hashes_c_\\_idx'")


def probes_only() -> str:
    """The head's ahash_search_index as a function that returns how many candidates its
    probes keep, without fetching them."""
    text = earlier_search(SCHEMA_REVISION).replace(
        f"ahash_search_index_{SCHEMA_REVISION}", PROBES)
    text, n = re.subn(r"RETURNS TABLE \([^)]*\)", "RETURNS bigint", text)
    assert n == 1, "RETURNS TABLE"
    text, n = re.subn(r"DECLARE\n", "DECLARE\n  found_rows bigint;\n", text)
    assert n == 1, "DECLARE"
    # Each branch: RETURN QUERY, the candidates' CTE, then ", cut AS (...)" and the fetch.
    text, n = re.subn(r"RETURN QUERY\n(.*?WITH cand AS \(.*?\)),\n\s*-- With a row limit.*?"
                      r"LIMIT max_rows;",
                      r"\1\n      SELECT count(*) INTO found_rows FROM cand;", text,
                      flags=re.DOTALL)
    assert n == 2, "the two branches"
    text, n = re.subn(r"END IF;\nEND", "END IF;\n  RETURN found_rows;\nEND", text)
    assert n == 1, "END IF"
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--runs", type=int, default=4, help="runs of each per query")
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    args = ap.parse_args()
    t = args.threshold

    with clustered_database(args.database_url, "ahashdb_bench_split", args.rows,
                            args.companies) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(probes_only())
        queries = stored_queries(conn, args.queries)
        print(f"{args.rows:,} rows, {args.companies} companies, {len(queries)} stored"
              f" hashes as queries, T={t}, {args.runs} runs of each per query,"
              f" schema {SCHEMA_REVISION}")
        whole_sql = "SELECT count(*) FROM ahash_search_index(%s, %s, %s, NULL, 'ahash')"
        probe_sql = f"SELECT {PROBES}(%s, %s, %s, NULL, 'ahash')"

        def timed(sql: str, params: tuple) -> tuple[float, int]:
            start = time.perf_counter()
            value = conn.execute(sql, params).fetchone()[0]
            return (time.perf_counter() - start) * 1000, value

        for scope in ("company", "all"):
            whole, probed, entries, rows = [], [], [], []
            for sql in (whole_sql, probe_sql):  # each branch's plan, made once
                q, company = queries[0]
                conn.execute(sql, (company if scope == "company" else None, q, t))
            for q, company in queries:
                params = (company if scope == "company" else None, q, t)
                times: dict[str, list[float]] = {whole_sql: [], probe_sql: []}
                for k in range(args.runs):
                    for sql in ((whole_sql, probe_sql) if k % 2 else (probe_sql, whole_sql)):
                        ms, value = timed(sql, params)
                        times[sql].append(ms)
                        if sql == whole_sql:
                            answer = value
                        elif k and value != answer:
                            raise SystemExit(f"probes kept {value} rows, the search"
                                             f" returned {answer}: query {q}, {scope}")
                with conn.transaction():
                    before = conn.execute(ENTRIES).fetchone()[0]
                    conn.execute(probe_sql, params).fetchone()
                    entries.append(int(conn.execute(ENTRIES).fetchone()[0] - before))
                whole.append(statistics.median(times[whole_sql]))
                probed.append(statistics.median(times[probe_sql]))
                rows.append(answer)
            med = statistics.median
            rest = [w - p for w, p in zip(whole, probed, strict=True)]
            per_entry = med(p * 1000 / e for p, e in zip(probed, entries, strict=True) if e)
            big = [i for i, n in enumerate(rows) if n >= 100]
            per_row = med(rest[i] * 1000 / rows[i] for i in big) if big else float("nan")
            print(f"{scope:7}  search {med(whole):7.2f} ms = probes {med(probed):7.2f}"
                  f" + fetch and the rest {med(rest):6.2f} (medians); median query:"
                  f" {med(entries):,.0f} entries, {med(rows):,.0f} rows;"
                  f" {per_entry:.2f} us per entry read,"
                  f" {per_row:.1f} us per row fetched ({len(big)} queries with 100+ rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
