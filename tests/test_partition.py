"""Hash partitioning by company_id: the rebuild keeps every row, id, grant and policy, and
every search on the partitioned table still equals brute force."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from ahashdb import HashStore
from ahashdb.cli import app
from ahashdb.errors import InvalidInput
from tests.test_search_exact import brute, datasets, load

runner = CliRunner()


@pytest.fixture(scope="module")
def part_url(make_database) -> str:  # noqa: ANN001
    url = make_database("partitioned")
    with HashStore(url, auto_migrate=False) as s:
        s.migrate()
    return url


@pytest.fixture
def pstore(part_url: str):  # noqa: ANN201
    with HashStore(part_url) as s:
        yield s


def snapshot(store: HashStore) -> list[tuple]:
    return store.connection.execute(
        "SELECT id, company_id, meta_id, algorithm, hash, source, hasher, created_at,"
        " c0, c1, c2, c3"
        " FROM image_hashes ORDER BY id").fetchall()


def test_partition_and_back_keeps_rows_ids_grants_and_row_level_security(
    pstore: HashStore,
) -> None:
    rng = random.Random(1)
    pstore.insert_many((rng.getrandbits(64), rng.randint(1, 50), i, f"s{i}")
                       for i in range(4_800))
    # other algorithms' rows, with the versions that made them, carry over too
    pstore.insert_many(((rng.getrandbits(64), rng.randint(1, 50), i) for i in range(200)),
                       algorithm="dhash", hashed_here=True)
    pstore.connection.execute("GRANT SELECT ON image_hashes TO PUBLIC")
    pstore.enable_row_level_security()
    before = snapshot(pstore)
    r = runner.invoke(app, ["partition", "8"], env={"AHASHDB_DATABASE_URL": pstore.url})
    assert r.exit_code == 0, r.output
    assert "8 partitions (was 1), 5,000 rows" in r.stdout
    assert pstore.partitions() == 8
    assert snapshot(pstore) == before
    assert {(r[3], r[6] is None) for r in before} == {("ahash", True), ("dhash", False)}
    conn = pstore.connection
    assert conn.execute("SELECT count(*) FROM pg_inherits"
                        " WHERE inhparent = 'image_hashes'::regclass").fetchone()[0] == 8
    assert conn.execute("SELECT has_table_privilege('public', 'image_hashes', 'SELECT')"
                        ).fetchone()[0]
    assert pstore.row_level_security()
    assert {r[0] for r in conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index"
        " WHERE indrelid = 'image_hashes'::regclass")} == {
        "image_hashes_pkey", *(f"image_hashes_c{i}_idx" for i in range(4))}
    new_id = pstore.insert(0x1234, company_id=3, meta_id=99_999)
    assert new_id == before[-1][0] + 1  # the identity continues after the old ids
    # Each company lives in exactly one partition.
    spread = conn.execute("SELECT company_id, count(DISTINCT tableoid) FROM image_hashes"
                          " GROUP BY company_id HAVING count(DISTINCT tableoid) > 1").fetchall()
    assert spread == []
    pstore.partition(1)
    assert pstore.partitions() == 1
    assert snapshot(pstore)[:-1] == before
    assert pstore.connection.execute(  # the table's own comment came along both ways
        "SELECT obj_description('image_hashes'::regclass, 'pg_class')"
    ).fetchone()[0].startswith("64-bit perceptual hashes")
    assert pstore.row_level_security()
    pstore.disable_row_level_security()
    with pytest.raises(InvalidInput, match="expected 1 to 1024"):
        pstore.partition(0)


def test_bulk_load_into_an_empty_partitioned_table(pstore: HashStore) -> None:
    pstore.connection.execute("TRUNCATE image_hashes")
    if pstore.partitions() == 1:
        pstore.partition(4)
    rows = [(i * 0x9E3779B97F4A7C15 % (1 << 64), i % 7, i) for i in range(20_000)]
    assert pstore.insert_many(rows + rows[:100], bulk=True) == 20_000
    assert pstore.count() == 20_000
    h = rows[123][0]
    assert [m.meta_id for m in pstore.search(h, company_id=123 % 7, max_distance=0)] == [123]


@given(data=datasets(), t=st.integers(0, 64), k=st.integers(0, 150))
def test_search_and_nearest_on_the_partitioned_table_equal_brute_force(
    pstore: HashStore, data, t: int, k: int  # noqa: ANN001
) -> None:
    if pstore.partitions() == 1:
        pstore.connection.execute("TRUNCATE image_hashes")
        pstore.partition(4)
    rows, query, algorithm = data
    stored = load(pstore, rows)
    for company in (1, 2, None):
        expect = brute(stored, query, company, t, algorithm)
        got = pstore.search(query, company_id=company, max_distance=t,
                            all_companies=company is None, algorithm=algorithm)
        assert [(m.distance, m.id) for m in got] == expect
        top = pstore.nearest(query, company_id=company, k=k, all_companies=company is None,
                             algorithm=algorithm)
        assert [(m.distance, m.id) for m in top] == \
            brute(stored, query, company, 64, algorithm)[:k]


def test_citus_commands_on_a_server_without_citus_say_so(store: HashStore,
                                                         database_url: str) -> None:
    assert store.citus_status() == {"citus": None, "distributed": False}
    with pytest.raises(InvalidInput, match="Citus"):
        store.distribute()
    assert store.partitions() == 1 and store.citus_status()["citus"] is None
    result = runner.invoke(app, ["--database-url", database_url, "citus", "enable"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Citus" in result.output
    assert len(result.output.strip().splitlines()) == 1
    status = runner.invoke(app, ["--database-url", database_url, "citus", "status"])
    assert status.exit_code == 0 and "no Citus" in status.output

