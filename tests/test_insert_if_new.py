"""Atomic check-and-insert: a hash is stored only when the company holds nothing within T
of it, under any concurrency; unrelated inserts do not wait on each other."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ahashdb import HashStore
from ahashdb.config import libpq_url
from ahashdb.hashes import to_signed
from tests.imagegen import photo
from tests.test_cli import run as cli

BASE = 0x0123_4567_89AB_CDEF


def test_stores_new_and_returns_the_matches_of_a_near_copy(store: HashStore) -> None:
    first = store.insert_if_new(BASE, company_id=1, meta_id=1, max_distance=4, source="a")
    assert first.stored is not None and first.matches == []
    assert (first.stored.meta_id, first.stored.source) == (1, "a")
    near = store.insert_if_new(BASE ^ 0b111, company_id=1, meta_id=2, max_distance=4)
    assert near.stored is None and [(m.id, m.distance) for m in near.matches] == [
        (first.stored.id, 3)]
    far = store.insert_if_new(BASE ^ 0b11111, company_id=1, meta_id=3, max_distance=4)
    assert far.stored is not None
    other = store.insert_if_new(BASE, company_id=2, meta_id=1, max_distance=4)
    assert other.stored is not None  # another company's rows never match
    assert store.count(1) == 2 and store.count(2) == 1


@pytest.mark.parametrize("t", [3, 10, 11, 12, 20, "mixed"])
def test_simultaneous_near_identical_inserts_store_exactly_one(store: HashStore,
                                                               t: int | str) -> None:
    n = 8
    barrier = threading.Barrier(n)
    results = [None] * n

    def insert(k: int) -> None:
        with HashStore(store.url) as s:
            s.connection  # noqa: B018 - connect before the barrier
            barrier.wait()
            # "mixed": half the callers use a threshold under the pair locks' bound (11),
            # half one over it; they must exclude each other all the same.
            limit = (4 if k % 2 else 14) if t == "mixed" else t
            results[k] = s.insert_if_new(BASE ^ (1 << k), company_id=5, meta_id=100 + k,
                                         max_distance=limit)

    threads = [threading.Thread(target=insert, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stored = [r.stored for r in results if r.stored is not None]
    assert len(stored) == 1 and store.count(5) == 1
    for r in results:
        if r.stored is None:
            assert stored[0].id in {m.id for m in r.matches}


def test_unrelated_inserts_do_not_wait_on_an_open_one(store: HashStore) -> None:
    # One call holds its locks (its transaction is open); others either go through at once
    # or, when they could conflict with it, wait (lock_timeout turns the wait into an error).
    with psycopg.connect(libpq_url(store.url)) as holder:
        holder.execute("SELECT * FROM ahash_insert_if_new(1, %s, 10, 1)",
                       (to_signed(BASE),)).fetchall()
        with psycopg.connect(libpq_url(store.url), autocommit=True) as other:
            other.execute("SET lock_timeout = '1s'")

            def call(company: int, value: int) -> bool:
                rows = other.execute("SELECT stored FROM ahash_insert_if_new(%s, %s, 10, 9)",
                                     (company, to_signed(value))).fetchall()
                return rows[0][0]

            assert call(2, BASE)                      # another company
            assert call(1, ~BASE & ((1 << 64) - 1))   # unrelated: shares no nibble
            with pytest.raises(psycopg.errors.LockNotAvailable):
                call(1, BASE ^ 1)                     # a near copy waits for the first
        holder.commit()
    assert store.insert_if_new(BASE ^ 1, company_id=1, meta_id=9, max_distance=10).stored \
        is None


@given(values=st.lists(st.integers(0, 40), min_size=1, max_size=30), t=st.integers(0, 20))
def test_a_sequence_of_inserts_stores_what_a_model_says(store: HashStore, values: list[int],
                                                        t: int) -> None:
    store.connection.execute("TRUNCATE image_hashes RESTART IDENTITY")
    kept: list[int] = []
    for meta, v in enumerate(values):
        h = BASE ^ (v * 0x0101_0101_0101) if v else BASE
        result = store.insert_if_new(h, company_id=1, meta_id=meta, max_distance=t)
        near = [k for k in kept if (k ^ h).bit_count() <= t]
        assert (result.stored is not None) == (not near)
        assert sorted((m.hash, m.distance) for m in result.matches) == sorted(
            (f"{k:016x}", (k ^ h).bit_count()) for k in near)
        if not near:
            kept.append(h)


def test_ingest_if_new_stores_one_of_each_picture(store: HashStore, tmp_path: Path) -> None:
    folder = tmp_path / "up"
    folder.mkdir()
    photo(1).save(folder / "1.png")
    photo(1).resize((200, 150)).save(folder / "2.png")  # the same picture, smaller
    photo(7).save(folder / "3.png")
    r = cli(store.url, "ingest", str(folder), "--company-id", "3", "--if-new", "4")
    assert r.exit_code == 0, r.output
    assert "2 added, 0 already present, 1 near-duplicates not stored, 0 failed" in r.stderr
    assert f"{folder / '2.png'}: not stored, within" in r.stderr
    assert sorted(m for _, m in store.connection.execute(
        "SELECT company_id, meta_id FROM image_hashes")) == [1, 3]
    again = cli(store.url, "ingest", str(folder), "--company-id", "3", "--if-new", "4")
    assert "0 added, 2 already present, 1 near-duplicates not stored" in again.stderr


def test_people_can_say_a_group_is_not_duplicates(store: HashStore) -> None:
    store.insert_many([(BASE, 1, 1), (BASE ^ 1, 1, 2), (BASE ^ 3, 1, 3), (BASE ^ 0xF0, 1, 4)])
    ids = {m: i for i, m in store.connection.execute(
        "SELECT id, meta_id FROM image_hashes").fetchall()}
    groups = [[m.meta_id for m in g] for g in store.duplicates(company_id=1, max_distance=2)]
    assert groups == [[1, 2, 3]]
    assert store.mark_not_duplicates(company_id=1, ids=[ids[1], ids[3]]) == 1
    # 1~2 and 2~3 still link all three; cutting 2's links too leaves nothing
    assert [[m.meta_id for m in g] for g in store.duplicates(company_id=1, max_distance=2)] \
        == [[1, 2, 3]]
    store.mark_not_duplicates(company_id=1, ids=[ids[1], ids[2]])
    assert [[m.meta_id for m in g] for g in store.duplicates(company_id=1, max_distance=2)] \
        == [[2, 3]]
    pairs = {(a, b) for a, b, _ in store.duplicate_pairs(company_id=1, max_distance=2)}
    assert pairs == {(ids[2], ids[3])}
    assert store.keep_only(company_id=1, keep=ids[2], ids=[ids[2], ids[3]]) == 1
    assert store.count(1) == 3
