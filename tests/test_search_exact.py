"""Every indexed answer equals the brute-force answer: both plans, all thresholds, top-k,
each algorithm's rows apart from the others'."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ahashdb import HashStore
from ahashdb.hashes import ALGORITHMS, to_signed
from ahashdb.schema import chunk_values

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
# The value bits of each chunk of the search indexes.
CHUNK_BITS = [[b for b in range(64) if chunk_values(1 << b)[i]] for i in range(4)]
ONE_CHUNK = [sum(1 << b for b in bits) for bits in CHUNK_BITS]
SPECIAL = st.sampled_from([0, (1 << 64) - 1, 0xFFFF_0000_0000_0000, 0x0000_0000_0000_FFFF,
                           *ONE_CHUNK, ONE_CHUNK[0] | ONE_CHUNK[2]])


def near(base: int) -> st.SearchStrategy[int]:
    """Hashes a few bits away from base, some differing only inside one chunk, some only
    inside 16 contiguous bits."""
    flips = st.lists(st.integers(0, 63), max_size=14)
    chunk = st.tuples(st.integers(0, 3), st.lists(st.integers(0, 15), max_size=16))
    word = st.tuples(st.integers(0, 3), st.integers(0, 0xFFFF))
    return st.one_of(
        flips.map(lambda bits: base ^ sum(1 << b for b in set(bits))),
        chunk.map(lambda c: base ^ sum(1 << CHUNK_BITS[c[0]][j] for j in set(c[1]))),
        word.map(lambda c: base ^ (c[1] << (16 * c[0]))),
    )


ALGORITHM = st.sampled_from(list(ALGORITHMS))


@st.composite
def datasets(draw: st.DrawFn) -> tuple[list[tuple[int, int, int, str]], int, str]:
    """Rows (hash, company, meta_id, algorithm) near a centre, and a query and its
    algorithm; the same values often appear under several algorithms."""
    centre = draw(st.one_of(U64, SPECIAL))
    values = draw(st.lists(st.one_of(near(centre), U64, SPECIAL), min_size=0, max_size=120))
    dups = draw(st.lists(st.sampled_from(values), max_size=20)) if values else []
    n = len(values + dups)
    companies = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    algorithms = draw(st.lists(st.sampled_from(["ahash", "ahash", "phash", "dhash"]),
                               min_size=n, max_size=n))
    rows = [(v, c, i, a) for i, (v, c, a) in
            enumerate(zip(values + dups, companies, algorithms, strict=True))]
    query = draw(st.one_of(near(centre), U64, SPECIAL))
    return rows, query, draw(ALGORITHM)


def brute(rows: list[tuple[int, int, int, str]], query: int, company: int | None,
          t: int, algorithm: str = "ahash") -> list[tuple[int, int]]:
    """(distance, id) of the algorithm's rows within t, ordered."""
    q = query & ((1 << 64) - 1)
    out = []
    for rid, c, h, a in rows:
        d = ((h & ((1 << 64) - 1)) ^ q).bit_count()
        if (company is None or c == company) and a == algorithm and d <= t:
            out.append((d, rid))
    return sorted(out)


def load(store: HashStore,
         rows: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    store.connection.execute("TRUNCATE image_hashes RESTART IDENTITY")
    for algorithm in ALGORITHMS:
        store.insert_many([r[:3] for r in rows if r[3] == algorithm], algorithm=algorithm)
    # Real statistics for ahash_search's plan choice (TRUNCATE left none, or stale ones).
    store.connection.execute("ANALYZE image_hashes")
    return store.connection.execute(
        "SELECT id, company_id, hash, algorithm::text FROM image_hashes").fetchall()


@given(data=datasets(), t=st.integers(0, 64), limit=st.none() | st.integers(0, 40))
def test_search_equals_brute_force_in_both_plans(
    store: HashStore, data, t: int, limit: int | None  # noqa: ANN001
) -> None:
    rows, query, algorithm = data
    stored = load(store, rows)
    q = to_signed(query)
    for company in (1, None):
        expected = brute(stored, query, company, t, algorithm)[:limit]
        api = store.search(query, company_id=company, max_distance=t, limit=limit,
                           all_companies=company is None, algorithm=algorithm)
        assert [(m.distance, m.id) for m in api] == expected
        for fn in ("ahash_search_index", "ahash_search_scan"):
            got = store.connection.execute(
                f"SELECT distance, id FROM {fn}(%s, %s, %s, %s, %s::ahash_algorithm)",
                (company, q, t, limit, algorithm)).fetchall()
            assert got == expected, fn
    if algorithm == "ahash":  # SQL callers that name no algorithm get aHashes only
        got = store.connection.execute(
            "SELECT distance, id FROM ahash_search(1, %s, %s, %s)", (q, t, limit)).fetchall()
        assert got == brute(stored, query, 1, t)[:limit]


@given(data=datasets(), k=st.integers(0, 150))
def test_nearest_equals_brute_force(store: HashStore, data, k: int) -> None:  # noqa: ANN001
    rows, query, algorithm = data
    stored = load(store, rows)
    for company in (2, None):
        expected = brute(stored, query, company, 64, algorithm)[:k]
        got = store.nearest(query, company_id=company, k=k, all_companies=company is None,
                            algorithm=algorithm)
        assert [(m.distance, m.id) for m in got] == expected


@given(data=datasets(), k=st.integers(0, 60), t=st.integers(0, 64))
def test_nearest_within_a_distance_equals_brute_force(
    store: HashStore, data, k: int, t: int  # noqa: ANN001
) -> None:
    """ahash_nearest(…, max_distance): the k nearest rows within t, exactly (a limited
    ahash_search is this call)."""
    rows, query, algorithm = data
    stored = load(store, rows)
    for company in (1, None):
        got = store.connection.execute(
            "SELECT distance, id FROM ahash_nearest(%s, %s, %s, %s::ahash_algorithm, %s)",
            (company, to_signed(query), k, algorithm, t)).fetchall()
        assert got == brute(stored, query, company, t, algorithm)[:k]


def test_the_plan_switch_with_real_statistics_keeps_answers_exact(store: HashStore) -> None:
    # A large company and a small one, analyzed: as T grows the plan turns from the chunk
    # indexes to a scan (earlier for the small company), and every answer stays exact.
    big = [((i * 0x9E3779B97F4A7C15) & ((1 << 64) - 1), 1, i) for i in range(20_000)]
    small = [((i * 0xD1B54A32D192ED03) & ((1 << 64) - 1), 2, i) for i in range(40)]
    stored = load(store, [(*r, "ahash") for r in big + small])
    conn = store.connection
    plans = set()
    for company in (1, 2):
        for t in range(0, 33, 2):
            plan = conn.execute("SELECT ahash_search_plan(%s, %s)", (company, t)).fetchone()[0]
            plans.add((company, plan))
            query = big[t][0] ^ 0b1011
            got = store.search(query, company_id=company, max_distance=t)
            assert [(m.distance, m.id) for m in got] == brute(stored, query, company, t), (
                company, t, plan)
    assert {(1, "index"), (1, "scan"), (2, "scan")} <= plans


@pytest.mark.parametrize("t", [0, 4, 10])
def test_giant_company_uses_the_chunk_indexes(store: HashStore, t: int) -> None:
    # Many rows in one company: the planner must pick index-only scans on the chunk indexes.
    store.insert_many(((i * 0x9E3779B97F4A7C15) & ((1 << 64) - 1), 1, i) for i in range(30000))
    store.connection.execute("VACUUM ANALYZE image_hashes")
    conn = store.connection
    assert conn.execute("SELECT ahash_search_plan(1, %s)", (t,)).fetchone()[0] == "index"
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET client_min_messages = log")
    # Parallel workers made free to the planner: a search must still keep to its backend,
    # since starting workers costs milliseconds, many times the search itself.
    parallel_costs = ("parallel_setup_cost", "parallel_tuple_cost",
                      "min_parallel_index_scan_size", "min_parallel_table_scan_size")
    for setting in parallel_costs:
        conn.execute(f"SET {setting} = 0")
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    try:
        conn.execute("SELECT * FROM ahash_search(1, 12345, %s)", (t,)).fetchall()
    finally:
        conn.execute("RESET client_min_messages")
        for setting in parallel_costs:
            conn.execute(f"RESET {setting}")
    plans = "\n".join(notices)
    assert "Index Only Scan using image_hashes_c" in plans
    assert "Seq Scan on image_hashes" not in plans
    assert "Gather" not in plans


def test_plan_inputs_agree_with_the_data(store: HashStore) -> None:
    conn = store.connection
    for t in range(65):  # arithmetic probe count == the masks the search actually probes
        radii = conn.execute("SELECT ahash_chunk_radii(%s)", (t,)).fetchone()[0]
        assert sum(r + 1 for r in radii) >= t + 1 and max(radii) - min(radii) <= 1
        masks = conn.execute(
            "SELECT count(*) FROM unnest(%s::int[]) r JOIN ahash_chunk_masks m"
            " ON m.weight <= r", (radii,)).fetchone()[0]
        assert conn.execute("SELECT ahash_probe_count(%s)", (t,)).fetchone()[0] == masks
    store.insert_many((i, 1 + (i % 10 == 0) + (i % 100 == 0), i) for i in range(20_000))
    conn.execute("ANALYZE image_hashes")
    for company, rows in ((1, 18_000), (2, 1_800), (3, 200), (4, 0)):
        est = conn.execute("SELECT ahash_company_rows_estimate(%s)", (company,)).fetchone()[0]
        assert abs(est - rows) <= 0.1 * 20_000 / 10 + 0.1 * rows, (company, est)
    assert conn.execute("SELECT ahash_company_rows_estimate(NULL)").fetchone()[0] == 20_000
    # a company of 200 rows is scanned at T=10; the one of 18,000 is probed
    assert conn.execute("SELECT ahash_search_plan(3, 10), ahash_search_plan(1, 10)"
                        ).fetchone() == ("scan", "index")


def test_nearest_returns_a_row_found_through_several_chunks_once(store: HashStore) -> None:
    """Rows equal to the query match all four chunks, rows one bit off match three; each
    step keeps only rows no earlier step can have found, so none comes back twice."""
    query = 0x0123_4567_89AB_CDEF
    rows = [(query, 1, i) for i in range(30)]
    rows += [(query ^ (1 << b), 1, 100 + b) for b in range(64)]
    rows += [(query ^ ONE_CHUNK[i % 4], 1, 200 + i) for i in range(8)]
    store.insert_many(rows)
    stored = store.connection.execute(
        "SELECT id, company_id, hash, algorithm::text FROM image_hashes").fetchall()
    for k in (1, 10, 30, 31, 94, 102, 500):
        got = store.nearest(query, company_id=1, k=k)
        assert [(m.distance, m.id) for m in got] == brute(stored, query, 1, 64)[:k]
        assert len({m.id for m in got}) == len(got) == min(k, len(rows))


def test_probe_masks_are_read_by_index_before_the_first_vacuum(store: HashStore) -> None:
    """A freshly migrated database: ahash_chunk_masks has statistics (0004) but no page
    marked all-visible until autovacuum gets to it. Every search path must still read the
    probe masks by index, not the whole 65,536-row table once per chunk (0009)."""
    store.insert_many(((i * 0x9E3779B97F4A7C15) & ((1 << 64) - 1), 1 + i % 2, i)
                      for i in range(2000))
    conn = store.connection
    with conn.transaction(force_rollback=True):
        # The fresh state, rebuilt inside a transaction that is rolled back.
        conn.execute("TRUNCATE ahash_chunk_masks")
        conn.execute("INSERT INTO ahash_chunk_masks (weight, mask)"
                     " SELECT bit_count(m::bit(16)), m FROM generate_series(0, 65535) AS m")
        conn.execute("ANALYZE ahash_chunk_masks")
        assert conn.execute("SELECT relallvisible FROM pg_class"
                            " WHERE relname = 'ahash_chunk_masks'").fetchone()[0] == 0
        masks_read = ("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables"
                      " WHERE relname = 'ahash_chunk_masks'")
        seq_before, index_before = conn.execute(masks_read).fetchone()
        for company in (1, None):
            for t in (0, 4, 10):
                got = conn.execute("SELECT id FROM ahash_search_index(%s, 12345, %s, NULL,"
                                   " 'ahash')", (company, t)).fetchall()
                want = conn.execute("SELECT id FROM ahash_search_scan(%s, 12345, %s, NULL,"
                                    " 'ahash')", (company, t)).fetchall()
                assert sorted(got) == sorted(want)
            conn.execute("SELECT * FROM ahash_nearest(%s, 12345, 10)", (company,)).fetchall()
        seq_scans, index_scans = conn.execute(masks_read).fetchone()
        assert seq_scans == seq_before
        assert index_scans >= index_before + 6 * 4
