"""What row-level security costs a search: the table's owner against an application role
that ``ahashdb rls enable`` keeps inside its company, on the same rows in the same run.

    python benchmarks/rls.py                                   # 1M rows, embedded server
    python benchmarks/rls.py --rows 5000000 --database-url postgresql://...
    python benchmarks/rls.py --revision 0009                   # before 0010

Builds a scratch database (ahashdb_rls, dropped at the end) of aHash-like clustered rows in
``--companies`` companies (bulk load), turns row-level security on, and creates a login
role with the grants the README gives an application. Each case runs its queries (stored
hashes of a company with 0-6 bits flipped) back to back, first as the owner, then as the
role with ``ahashdb.company_id`` set to that company; it prints the p50 of each, their
ratio, and whether both saw the same answers. The role's queries must not read other
companies' index entries: under row-level security PostgreSQL only lets leakproof
comparisons (plain integer equality, not an enum's) narrow an index scan.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, ms, scratch_database, timed  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from ahashdb.config import libpq_url  # noqa: E402
from ahashdb.ddl import RLS_ENABLE  # noqa: E402

ROLE = "ahashdb_rls_bench"
CASES = [("company T=0", "search", 0), ("company T=4", "search", 4),
         ("company T=10", "search", 10), ("company top-10", "nearest", 10),
         ("tenant, all companies T=10", "all", 10)]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--companies", type=int, default=10)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    ap.add_argument("--revision", default=None,
                    help="downgrade to this schema revision after loading (e.g. 0009, to"
                         " measure before 0010's leakproof index key)")
    args = ap.parse_args()

    url = scratch_database(args.database_url, "ahashdb_rls")
    try:
        with HashStore(url, auto_migrate=False) as owner:
            owner.migrate()
            conn = owner.connection
            server = conn.execute("SHOW server_version").fetchone()[0]
            companies, hashes = datagen.clustered(args.rows, args.companies)
            rows = datagen.rows(companies, hashes)
            owner.insert_many(rows, bulk=True)
            if args.revision:
                owner.downgrade(args.revision)
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
            conn.execute("VACUUM ANALYZE")
            conn.execute(RLS_ENABLE)  # (HashStore's own call wants the current schema)
            role = sql.Identifier(ROLE)
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'bench' NOSUPERUSER"
                                 " NOBYPASSRLS").format(role))
            conn.execute(sql.SQL("GRANT SELECT ON image_hashes, ahash_chunk_masks,"
                                 " alembic_version, ahash_hashers TO {}").format(role))
            try:
                print(f"PostgreSQL {server}, schema {revision}; {args.rows:,} rows,"
                      f" {args.companies} companies, {args.queries} queries per case;"
                      f" p50 ms")
                print(f"{'case':<28} {'owner':>8} {'RLS role':>9} {'ratio':>6}  same answers")
                role_url = make_url(libpq_url(url)).set(username=ROLE, password="bench")
                with psycopg.connect(role_url.render_as_string(False),
                                     autocommit=True) as app:
                    run(args, {"owner": conn, "role": app}, companies, hashes)
            finally:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
                conn.execute(sql.SQL("DROP ROLE {}").format(role))
    finally:
        drop_database(url)
    return 0


def run(args: argparse.Namespace, sessions: dict[str, psycopg.Connection],
        companies: np.ndarray, hashes: np.ndarray) -> None:
    """Time every case in the owner's and the role's session; print one line per case."""
    rng = np.random.default_rng(7)
    picks = []
    for _ in range(args.queries):
        c = int(rng.integers(1, args.companies + 1))
        pool = hashes[companies == c]
        q = datagen.flip_bits(pool[rng.integers(0, len(pool))][None],
                              np.array([rng.integers(0, 7)]), rng)
        picks.append((c, int(datagen.to_signed(q)[0])))

    def ask(who: str, kind: str, c: int, q: int, arg: int) -> list:
        conn = sessions[who]
        if who == "role" and kind == "all":  # the README's form: RLS keeps its company
            return conn.execute("SELECT id, distance FROM ahash_search(NULL, %s, %s)",
                                (q, arg)).fetchall()
        function = "ahash_nearest" if kind == "nearest" else "ahash_search"
        return conn.execute(f"SELECT id, distance FROM {function}(%s, %s, %s)",
                            (c, q, arg)).fetchall()

    def as_tenant(who: str, c: int) -> None:
        # An application sets its company once per session, not per query: set it
        # outside the timing (on the owner's session too, where it changes nothing,
        # so that both sessions make the same round trip before each query).
        sessions[who].execute("SELECT set_config('ahashdb.company_id', %s, false)",
                              (str(c),))

    for label, kind, arg in CASES:
        times: dict[str, list[float]] = {"owner": [], "role": []}
        answers: dict[str, list] = {"owner": [], "role": []}
        # A warm-up pass each, then two rounds of owner's queries and role's queries
        # back to back, so neither always goes first.
        for who in ("owner", "role"):
            for c, q in picks:
                as_tenant(who, c)
                answers[who].append(ask(who, kind, c, q, arg))
        for _ in range(2):
            for who in ("owner", "role"):
                for c, q in picks:
                    as_tenant(who, c)
                    times[who].append(timed(ask, who, kind, c, q, arg)[0])
        p_owner = statistics.median(times["owner"])
        p_role = statistics.median(times["role"])
        same = "yes" if answers["owner"] == answers["role"] else "NO"
        print(f"{label:<28} {ms(p_owner):>8} {ms(p_role):>9} {p_role / p_owner:>5.1f}x"
              f"  {same}")


if __name__ == "__main__":
    raise SystemExit(main())
