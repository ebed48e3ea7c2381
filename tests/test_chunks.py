"""The chunks of the search indexes: a split of the 64 bits, each spread over the grid, the
same in Python, in the generated columns and in ahash_chunks(), and a migration to them
that keeps every row and answer."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import psycopg
from hypothesis import given
from hypothesis import strategies as st

from ahashdb import HashStore
from ahashdb.config import libpq_url
from ahashdb.connection import migrations_path
from ahashdb.hashes import to_signed
from ahashdb.schema import chunk_sql, chunk_values
from tests.hashgen import values_near

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


def cell(bit: int) -> tuple[int, int]:
    """The (row, column) of the 8x8 grid a value bit holds (bit 63 = the first cell)."""
    return divmod(63 - bit, 8)


def test_chunks_split_the_bits_two_per_row_none_side_by_side() -> None:
    owners = []
    for bit in range(64):
        values = chunk_values(1 << bit)
        assert sorted(v.bit_count() for v in values) == [0, 0, 0, 1], bit
        owners.append(next(i for i, v in enumerate(values) if v))
    assert chunk_values((1 << 64) - 1) == (0xFFFF,) * 4
    for i in range(4):
        cells = [cell(b) for b in range(64) if owners[b] == i]
        assert len(cells) == 16
        assert all((r + c) % 4 == i for r, c in cells)
        assert sorted(r for r, _ in cells) == sorted(list(range(8)) * 2)
        assert not any(abs(r1 - r2) + abs(c1 - c2) == 1
                       for (r1, c1) in cells for (r2, c2) in cells if (r1, c1) != (r2, c2))


@given(a=U64, b=U64)
def test_chunk_distances_add_up_to_the_hash_distance(a: int, b: int) -> None:
    # what the pigeonhole rule of multi-index hashing needs
    ca, cb = chunk_values(a), chunk_values(b)
    assert sum((x ^ y).bit_count() for x, y in zip(ca, cb, strict=True)) == (a ^ b).bit_count()
    assert chunk_values(to_signed(a)) == ca


def test_schema_mirrors_the_migration() -> None:
    # The migration that spread the chunks holds their generated columns as frozen text:
    # it must be exactly the expressions ahashdb.ddl computes from CHUNK_TERMS.
    path = migrations_path() / "versions" / "0007_spread_chunks.py"
    spec = importlib.util.spec_from_file_location("m0007", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = ", ".join(f"ADD COLUMN c{i} integer GENERATED ALWAYS AS ({chunk_sql(i)}) STORED"
                         " NOT NULL" for i in range(4))
    assert expected in module.SPREAD_CHUNK_COLUMNS
    assert all(chunk_sql(i, "value") in module.AHASH_CHUNKS for i in range(4))


@given(values=st.lists(U64, min_size=1, max_size=40))
def test_generated_columns_and_ahash_chunks_equal_python(store: HashStore,
                                                         values: list[int]) -> None:
    conn = store.connection
    conn.execute("TRUNCATE image_hashes")
    store.insert_many((v, 1, i) for i, v in enumerate(values))
    rows = conn.execute("SELECT hash, ARRAY[c0, c1, c2, c3], ahash_chunks(hash)"
                        " FROM image_hashes").fetchall()
    assert len(rows) == len(values)
    for h, columns, function in rows:
        assert tuple(columns) == tuple(function) == chunk_values(h)


def test_migration_0006_to_0007_and_back_keeps_rows_and_answers(make_database) -> None:  # noqa: ANN001
    url = make_database("chunks")
    centre, values = values_near(random.Random(7), 3000, 1000, max_flips=12)
    with HashStore(url, auto_migrate=False) as store, \
            psycopg.connect(libpq_url(url), autocommit=True) as conn:
        store.migrate("0006")
        conn.execute("INSERT INTO image_hashes (company_id, meta_id, hash, source)"
                     " SELECT 1 + i %% 3, i, h, 's' || i"
                     " FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(h, i)",
                     ([to_signed(v) for v in values],))
        snapshot = "SELECT id, company_id, meta_id, hash, source FROM image_hashes ORDER BY id"
        before = conn.execute(snapshot).fetchall()

        def answers() -> list:
            return [conn.execute("SELECT id, distance FROM ahash_search(%s, %s, %s)",
                                 (c, to_signed(centre), t)).fetchall()
                    for c in (1, None) for t in (0, 4, 10, 16)] + [
                conn.execute("SELECT id, distance FROM ahash_nearest(2, %s, 25)",
                             (to_signed(centre),)).fetchall()]

        expected = answers()
        assert sum(map(len, expected)) > 1000
        store.migrate()
        assert conn.execute(snapshot).fetchall() == before
        chunks = conn.execute("SELECT hash, c0, c1, c2, c3 FROM image_hashes").fetchall()
        assert all(chunk_values(h) == tuple(c) for h, *c in chunks)
        assert answers() == expected
        store.downgrade("0006")
        assert conn.execute(snapshot).fetchall() == before
        old = conn.execute("SELECT hash, c0 FROM image_hashes").fetchall()
        assert all(c0 == (h >> 48) & 0xFFFF for h, c0 in old)
        assert answers() == expected
        assert conn.execute("SELECT to_regproc('ahash_chunks')").fetchone()[0] is None


def test_migration_0007_down_and_up_on_a_partitioned_table(make_database) -> None:  # noqa: ANN001
    url = make_database("chunks_partitioned")
    centre, values = values_near(random.Random(8), 1500, 500, max_flips=12)
    with HashStore(url, auto_migrate=True) as store:
        store.insert_many((v, 1 + i % 5, i, f"s{i}") for i, v in enumerate(values))
        store.partition(4)
        conn = store.connection
        snapshot = "SELECT id, company_id, meta_id, hash, source FROM image_hashes ORDER BY id"
        before = conn.execute(snapshot).fetchall()

        def answers() -> list:
            return [conn.execute("SELECT id, distance FROM ahash_search(%s, %s, %s)",
                                 (c, to_signed(centre), t)).fetchall()
                    for c in (2, None) for t in (4, 10)]

        expected = answers()
        assert sum(map(len, expected)) > 300
        store.downgrade("0006")
        assert conn.execute(snapshot).fetchall() == before
        assert answers() == expected
        store.migrate()
        assert store.partitions() == 4
        assert conn.execute(snapshot).fetchall() == before
        chunks = conn.execute("SELECT hash, c0, c1, c2, c3 FROM image_hashes").fetchall()
        assert all(chunk_values(h) == tuple(c) for h, *c in chunks)
        assert answers() == expected


def _benchmark(name: str):  # noqa: ANN202
    """The benchmark script ``benchmarks/<name>.py`` as a module (it puts its folder, with
    datagen, on the path)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_layout_model_counts_the_entries_a_search_reads(store: HashStore) -> None:
    # benchmarks/chunk_layouts.py compares index layouts by the chunk-index entries a search
    # would read, counted in numpy; for the layout in use that count must be exactly what
    # ahash_search_index makes the server's chunk indexes return.
    model = _benchmark("chunk_layouts")
    import datagen  # beside the script, on the path it set

    companies, hashes = datagen.clustered(20_000, 3, seed=5)
    store.insert_many(datagen.rows(companies, hashes))
    store.connection.execute("ANALYZE image_hashes")
    rng = np.random.default_rng(9)
    queries = datagen.flip_bits(hashes[rng.integers(0, len(hashes), 6)],
                                rng.integers(0, 5, 6), rng)
    returned = (
        "SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index"
        " WHERE indexrelid::regclass::text LIKE 'image_hashes_c_\\_idx'")
    layout = model.layout_in_use()
    seen = []
    for company in (None, 2):
        rows = hashes if company is None else hashes[companies == company]
        for t in (4, 10, 13):
            counter = model.Counter(rows, queries, layout, max_radius=model.radii(t, 4)[0])
            expect = counter.entries(model.radii(t, 4))
            for q, want in zip(queries, expect, strict=True):
                with store.connection.transaction():
                    before = store.connection.execute(returned).fetchone()[0]
                    store.connection.execute(
                        "SELECT count(*) FROM ahash_search_index(%s, %s, %s, NULL, 'ahash')",
                        (company, int(q.view(np.int64)), t)).fetchone()
                    after = store.connection.execute(returned).fetchone()[0]
                assert int(after - before) == int(want), (company, t, int(q))
                seen.append(int(want))
    assert max(seen) > 1_000  # the counts compared are not trivially small


def test_the_probes_only_copy_keeps_the_search_answer(store: HashStore) -> None:
    # benchmarks/search_split.py times the search against a copy of its SQL cut after the
    # probes; the cut must keep exactly the candidates the search returns.
    split = _benchmark("search_split")
    import datagen

    companies, hashes = datagen.clustered(20_000, 3, seed=6)
    store.insert_many(datagen.rows(companies, hashes))
    sizes = []
    # The copy lives only in this transaction: the session's database must keep the
    # migrations' SQL surface and nothing more (test_schema_surface).
    with store.connection.transaction(force_rollback=True):
        store.connection.execute(split.probes_only())
        for q in hashes[:30].view(np.int64).tolist():
            for company, t in ((None, 10), (1, 12), (2, 4)):
                found = store.connection.execute(
                    f"SELECT {split.PROBES}(%s, %s, %s, NULL, 'ahash')",
                    (company, q, t)).fetchone()[0]
                answer = store.connection.execute(
                    "SELECT count(*) FROM ahash_search(%s, %s, %s)", (company, q, t)).fetchone()[0]
                assert found == answer, (company, q, t)
                sizes.append(answer)
    assert max(sizes) > 20
