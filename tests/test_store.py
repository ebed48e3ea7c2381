"""HashStore against a real PostgreSQL: writes, reads, scoping, errors, SQL surface."""

from __future__ import annotations

import time

import imagehash
import psycopg
import pytest
from PIL import Image
from sqlalchemy import create_engine, select

from ahashdb import HashStore, Match
from ahashdb.config import sqlalchemy_url
from ahashdb.errors import (
    AhashdbError,
    DatabaseUnavailable,
    InvalidHash,
    InvalidInput,
    SchemaNotMigrated,
)
from ahashdb.hashes import from_hex, to_signed
from ahashdb.schema import HashHex, ahash_distance, ahash_from_hex, image_hashes
from ahashdb.store import SCHEMA_REVISION

A, B = "ffd7918181c9ffff", "9f172786e71f1e00"


def test_insert_returns_id_then_none_for_the_same_row(store: HashStore) -> None:
    first = store.insert(A, company_id=1, meta_id=10, source="a.jpg")
    assert isinstance(first, int)
    assert store.insert(A, company_id=1, meta_id=10, source="a.jpg") is None
    assert store.insert(A, company_id=2, meta_id=10) is not None  # another tenant
    assert store.insert(A, company_id=1, meta_id=11) is not None  # another object
    assert store.count(1) == 2 and store.count() == 3


def test_every_hash_spelling_stores_the_same_bits(store: HashStore) -> None:
    u = from_hex(A)
    spellings = [A, A.upper(), u, to_signed(u), imagehash.hex_to_hash(A)]
    for meta, value in enumerate(spellings):
        store.insert(value, company_id=1, meta_id=meta)
    stored = store.connection.execute("SELECT DISTINCT hash FROM image_hashes").fetchall()
    assert stored == [(to_signed(u),)]


def test_images_are_hashed_on_insert(store: HashStore, images_dir) -> None:  # noqa: ANN001
    path = sorted(images_dir.glob("*.png"))[0]
    store.insert(path, company_id=3, meta_id=1, source=str(path))
    (match,) = store.search(path, company_id=3, max_distance=0)
    assert match.hash == str(imagehash.average_hash(Image.open(path)))
    assert match.source == str(path) and match.distance == 0


def test_insert_many_copies_skips_duplicates_and_counts(store: HashStore) -> None:
    rows = [(i * 7919, 1, i, f"s{i}") for i in range(1000)]
    assert store.insert_many(rows, batch_size=300) == 1000
    assert store.insert_many(rows + [(12345, 1, 5000)], batch_size=300) == 1
    dicts = [{"hash": A, "company_id": 2, "meta_id": 1}, {"image": B, "company_id": 2,
             "meta_id": 2, "source": "b"}]
    assert store.insert_many(dicts) == 2
    assert store.count() == 1003


def test_insert_many_bulk_is_exact_and_deduplicates(store: HashStore) -> None:
    rows = [(i % 500, 1 + i % 3, i % 700) for i in range(3000)]
    expected = {(c, m, to_signed(h)) for h, c, m in rows}
    assert len(expected) == 3000
    assert store.insert_many(rows + rows[:40], bulk=True) == len(expected)  # repeats once
    got = set(store.connection.execute(
        "SELECT company_id, meta_id, hash FROM image_hashes").fetchall())
    assert got == expected
    # into a non-empty table, bulk adds only what is new
    assert store.insert_many(rows + [(1, 9, 9)], bulk=True) == 1
    indexes = {r[0] for r in store.connection.execute(
        "SELECT indexrelid::regclass::text FROM pg_index"
        " WHERE indrelid = 'image_hashes'::regclass").fetchall()}
    assert indexes == {"image_hashes_pkey", *(f"image_hashes_c{i}_idx" for i in range(4))}


def test_failed_batch_keeps_earlier_batches(store: HashStore) -> None:
    def rows():
        for i in range(250):
            yield (i, 1, i)
        yield ("not-a-hash", 1, 999)

    with pytest.raises(AhashdbError, match="row 251: 'not-a-hash'"):
        store.insert_many(rows(), batch_size=100)
    assert store.count(1) == 200  # two full batches committed; the broken one is not


def test_insert_many_with_several_writers_is_exact(store: HashStore) -> None:
    rows = [(i * 0x9E3779B97F4A7C15 % (1 << 64), 1 + i % 4, i) for i in range(30_000)]
    assert store.insert_many(rows[:5_000], batch_size=1_000) == 5_000  # some already stored
    seen: list[tuple[int, int]] = []
    # repeats inside and across concurrent batches, and rows already stored
    added = store.insert_many(rows + rows[10_000:12_000], batch_size=2_500, writers=3,
                              on_batch=lambda a, n: seen.append((a, n)))
    assert added == 25_000 and sum(a for a, _ in seen) == 25_000
    assert sum(n for _, n in seen) == 32_000 and len(seen) == 13
    got = set(store.connection.execute(
        "SELECT company_id, meta_id, hash FROM image_hashes").fetchall())
    assert got == {(c, m, to_signed(h)) for h, c, m in rows}
    with pytest.raises(InvalidInput, match="writers 0: expected 1 to 64"):
        store.insert_many(rows, writers=0)


def test_a_failed_batch_stops_several_writers_and_keeps_finished_batches(
    store: HashStore,
) -> None:
    def rows():
        for i in range(1_000):
            yield (i, 1, i)
        yield ("not-a-hash", 1, 9_999)
        yield from ((i, 1, i) for i in range(1_000, 2_000))

    def others() -> int:
        return store.connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ahashdb'"
            " AND pid <> pg_backend_pid() AND datname = current_database()").fetchone()[0]

    before = others()
    with pytest.raises(AhashdbError, match="row 1001: 'not-a-hash'"):
        store.insert_many(rows(), batch_size=100, writers=2)
    assert store.count(1) == 1_000  # every whole batch before the bad row, nothing after
    # the store's own connection is still usable; the extra one was closed (its server
    # process leaves pg_stat_activity a moment after the client closes it)
    deadline = time.monotonic() + 10
    while others() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert others() == before


def test_search_and_nearest_are_scoped_to_a_company(store: HashStore) -> None:
    store.insert(A, company_id=1, meta_id=1)
    store.insert(A, company_id=2, meta_id=1)
    store.insert(B, company_id=1, meta_id=2)
    hits = store.search(A, company_id=1, max_distance=64)
    assert [(m.company_id, m.meta_id, m.distance) for m in hits] == [(1, 1, 0), (1, 2, 33)]
    assert all(isinstance(m, Match) and m.hash in (A, B) for m in hits)
    assert [m.company_id for m in store.search(A, all_companies=True, max_distance=0)] == [1, 2]
    assert [m.meta_id for m in store.nearest(B, company_id=1, k=1)] == [2]
    with pytest.raises(InvalidInput, match="company_id is required"):
        store.search(A, max_distance=3)
    with pytest.raises(InvalidInput, match="not both"):
        store.search(A, company_id=1, all_companies=True)


def test_limit_and_validation(store: HashStore) -> None:
    store.insert_many([(i, 1, i) for i in range(50)])
    assert len(store.search(0, company_id=1, max_distance=64, limit=7)) == 7
    for bad in (-1, 65, "3"):
        with pytest.raises(InvalidInput, match="max_distance"):
            store.search(0, company_id=1, max_distance=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="company_id"):
        store.insert(A, company_id=1 << 63, meta_id=1)
    with pytest.raises(InvalidHash, match="16 hex digits"):
        store.search("xyz", company_id=1)


def test_delete_by_meta_id_and_ids(store: HashStore) -> None:
    ids = [store.insert(h, company_id=1, meta_id=m) for h, m in ((1, 1), (2, 1), (3, 2))]
    store.insert(1, company_id=2, meta_id=1)
    assert store.delete(company_id=1, meta_id=1) == 2
    assert store.delete(company_id=2, ids=[ids[2]]) == 0  # another company's id
    assert store.delete(company_id=1, ids=[ids[2]]) == 1
    assert store.count() == 1
    with pytest.raises(InvalidInput, match="exactly one"):
        store.delete(company_id=1)


def test_stats(store: HashStore) -> None:
    store.insert_many([(0, 1, 1), (-1, 1, 2), (5, 2, 3)])
    s = store.stats()
    assert s["rows"] == 3 and s["companies"] == {1: 2, 2: 1}
    assert s["all_zero_hashes"] == 1 and s["all_one_hashes"] == 1
    assert s["schema_revision"] == SCHEMA_REVISION and s["index_bytes"] > 0
    assert "password" not in str(s)


def test_sql_functions_from_psql(store: HashStore) -> None:
    conn = store.connection
    row = conn.execute(
        "SELECT ahash_distance(ahash_from_hex('ffd7918181c9ffff'),"
        " ahash_from_hex('9f172786e71f1e00')), ahash_to_hex(x'ffd7918181c9ffff'::bigint),"
        " ahash_from_hex('ffd7918181c9ffff') = x'ffd7918181c9ffff'::bigint,"
        " ahash_to_hex(0), ahash_from_hex(NULL)"
    ).fetchone()
    assert row == (33, A, True, "0000000000000000", None)
    with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="16 hex digits"):
        conn.execute("SELECT ahash_from_hex('xyz')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="max_distance"):
        conn.execute("SELECT * FROM ahash_search(1, 0, -1)")


def test_functions_are_immutable_parallel_safe_and_distance_inlines(store: HashStore) -> None:
    conn = store.connection
    rows = conn.execute(
        "SELECT proname, provolatile, proparallel FROM pg_proc"
        " WHERE proname IN ('ahash_distance', 'ahash_to_hex', 'ahash_from_hex')"
    ).fetchall()
    assert {r[0] for r in rows} == {"ahash_distance", "ahash_to_hex", "ahash_from_hex"}
    assert all(r[1] == "i" and r[2] == "s" for r in rows)
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN VERBOSE SELECT ahash_distance(hash, 5) FROM image_hashes").fetchall())
    assert "bit_count" in plan and "ahash_distance" not in plan


def test_sqlalchemy_table_type_and_functions(store: HashStore) -> None:
    store.insert(A, company_id=7, meta_id=1)
    store.insert(B, company_id=7, meta_id=2)
    engine = create_engine(sqlalchemy_url(store.url))
    q = ahash_from_hex(A)
    stmt = (
        select(image_hashes.c.meta_id, image_hashes.c.hash.cast(HashHex),
               ahash_distance(image_hashes.c.hash, q).label("d"))
        .where(image_hashes.c.company_id == 7, ahash_distance(image_hashes.c.hash, q) <= 40)
        .order_by("d")
    )
    with engine.connect() as c:
        assert c.execute(stmt).all() == [(1, A, 0), (2, B, 33)]
    engine.dispose()


def test_unmigrated_database_says_which_command_fixes_it(make_database) -> None:  # noqa: ANN001
    url = make_database("empty")
    with HashStore(url) as s, pytest.raises(SchemaNotMigrated, match="ahashdb migrate"):
        s.count()


def test_unreachable_database_names_host_port_not_password() -> None:
    s = HashStore("postgresql://user:s3cret@127.0.0.1:1/db")
    with pytest.raises(DatabaseUnavailable) as info:
        s.count()
    assert "127.0.0.1:1" in str(info.value) and "s3cret" not in str(info.value)
    assert "s3cret" not in repr(s)


def test_a_large_first_load_without_options_goes_in_bulk(store: HashStore) -> None:
    """More than 100,000 rows into an empty table: the bulk path (the table is rewritten —
    a new relation — and its indexes built once, smaller); into a table that holds rows,
    or fewer rows, the batched path."""
    def filenode() -> int:
        return store.connection.execute(
            "SELECT pg_relation_filenode('image_hashes')").fetchone()[0]

    def index_bytes_per_row() -> float:
        size = store.connection.execute(
            "SELECT pg_relation_size('image_hashes_c0_idx')").fetchone()[0]
        return size / store.count()

    small = filenode()
    assert store.insert_many([(i * 2654435761 % 2**64, 1, i) for i in range(5_000)]) == 5_000
    assert filenode() == small  # a small load: batches
    store.connection.execute("TRUNCATE image_hashes")
    empty = filenode()
    rows = [(i * 11400714819323198485 % 2**64, 1 + i % 3, i) for i in range(150_000)]
    assert store.insert_many(rows) == 150_000
    assert filenode() != empty  # rewritten: the bulk path
    assert index_bytes_per_row() < 60
    h = rows[777][0]
    assert [m.meta_id for m in store.search(h, company_id=rows[777][1], max_distance=0)] \
        == [777]
    bulk = filenode()
    more = [(h ^ (1 << 5), 1 + i % 3, 1_000_000 + i) for i, (h, _, _) in
            enumerate(rows[:120_000])]
    assert store.insert_many(more) == 120_000
    assert filenode() == bulk  # rows were there: batches, the table kept
    assert store.count() == 270_000
