"""Alembic owns the schema: head matches the code, metadata matches the migrations, and
downgrade base → upgrade head round-trips."""

from __future__ import annotations

import random

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from ahashdb import HashStore
from ahashdb.config import libpq_url
from ahashdb.hashes import to_signed
from ahashdb.store import SCHEMA_REVISION
from tests.hashgen import values_near


def _tables(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()}


def _functions(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace"
        " AND proname LIKE 'ahash%'").fetchall()}


def test_code_expects_the_migrations_head(database_url: str) -> None:
    with HashStore(database_url) as store:
        script = ScriptDirectory.from_config(store.alembic_config())
        assert script.get_current_head() == SCHEMA_REVISION
        assert store.schema_revision() == SCHEMA_REVISION


def test_upgrade_check_downgrade_upgrade(make_database) -> None:  # noqa: ANN001
    url = make_database("migrations")
    raw = psycopg.connect(libpq_url(url), autocommit=True)
    with raw, HashStore(url, auto_migrate=False) as store:
        assert store.schema_revision() is None
        store.migrate()
        assert store.schema_revision() == SCHEMA_REVISION
        # autogenerate finds no difference between schema.py and the migrated database
        command.check(store.alembic_config())
        store.insert("ffd7918181c9ffff", company_id=1, meta_id=1)
        functions = _functions(raw)
        assert {"ahash_distance", "ahash_to_hex", "ahash_from_hex", "ahash_search",
                "ahash_nearest"} <= functions

        store.downgrade("0002")
        assert "ahash_nearest" not in _functions(raw)
        assert [r[0] for r in raw.execute(
            "SELECT distance FROM ahash_search(1, ahash_from_hex('ffd7918181c9ffff'), 3)")] == [0]

        store.downgrade("base")
        assert _tables(raw) <= {"alembic_version"}
        assert _functions(raw) == set()

        store.migrate()
        assert store.schema_revision() == SCHEMA_REVISION
        assert _functions(raw) == functions
        command.check(store.alembic_config())


def test_nearest_answers_survive_0008_down_and_up(make_database) -> None:  # noqa: ANN001
    """0008 only redefines ahash_nearest: its answers equal 0007's on the same rows, and a
    downgrade restores 0007's definition."""
    url = make_database("nearest_0008")
    rng = random.Random(11)
    centre, values = values_near(rng, 3000, 500, max_flips=14)
    queries = [to_signed(centre)] + [to_signed(rng.choice(values) ^ (1 << rng.randrange(64)))
                                     for _ in range(5)]
    with HashStore(url, auto_migrate=False) as store, \
            psycopg.connect(libpq_url(url), autocommit=True) as conn:
        store.migrate()
        store.insert_many((v, 1 + i % 3, i) for i, v in enumerate(values))

        def answers() -> list:
            return [conn.execute("SELECT id, distance FROM ahash_nearest(%s, %s, %s)",
                                 (c, q, k)).fetchall()
                    for c in (1, None) for q in queries for k in (1, 10, 40, 400)]

        def definition() -> str:
            return conn.execute("SELECT pg_get_functiondef('ahash_nearest'::regproc)"
                                ).fetchone()[0]

        at_head = answers()
        head_definition = definition()
        store.downgrade("0007")
        assert definition() != head_definition and "hist" not in definition()
        assert answers() == at_head
        store.migrate()
        assert definition() == head_definition


def test_search_answers_survive_0009_down_and_up(make_database) -> None:  # noqa: ANN001
    """0009 only changes how ahash_search_index picks its probe masks: the same masks, so the
    same answers as 0008's, and a downgrade restores 0008's definition."""
    url = make_database("search_0009")
    rng = random.Random(12)
    centre, values = values_near(rng, 2000, 300, max_flips=12)
    with HashStore(url, auto_migrate=False) as store, \
            psycopg.connect(libpq_url(url), autocommit=True) as conn:
        store.migrate()
        store.insert_many((v, 1 + i % 2, i) for i, v in enumerate(values))

        def answers() -> list:
            return [conn.execute("SELECT id, distance FROM ahash_search_index(%s, %s, %s,"
                                 " NULL, 'ahash')", (c, to_signed(centre), t)).fetchall()
                    for c in (1, None) for t in (0, 3, 4, 8, 10, 16)]

        def definition() -> str:
            return conn.execute("SELECT pg_get_functiondef('ahash_search_index'::regproc)"
                                ).fetchone()[0]

        at_head = answers()
        assert sum(map(len, at_head)) > 100
        head_definition = definition()
        assert "m.weight BETWEEN 0 AND radii[1]" in head_definition
        store.downgrade("0008")
        assert "m.weight <= radii[1]" in definition()
        assert answers() == at_head
        store.migrate()
        assert definition() == head_definition


@pytest.mark.parametrize("partitions", [1, 3])
def test_0010_down_and_up_keeps_rows_answers_and_index_keys(make_database,  # noqa: ANN001
                                                            partitions: int) -> None:
    """0010 adds algorithm_code and keys the chunk indexes on it; a downgrade takes it out
    again. Rows and every algorithm's answers stay the same both ways, plain or
    hash-partitioned."""
    url = make_database(f"algorithm_code_{partitions}")
    rng = random.Random(13)
    centre, values = values_near(rng, 1500, 300, max_flips=12)
    with HashStore(url, auto_migrate=False) as store:
        store.migrate()
        for algorithm in ("ahash", "dhash"):
            store.insert_many(((v, 1 + i % 3, i, f"s{i}") for i, v in enumerate(values)),
                              algorithm=algorithm)
        store.partition(partitions)
        conn = store.connection
        snapshot = ("SELECT id, company_id, meta_id, hash, source, algorithm::text"
                    " FROM image_hashes ORDER BY id")
        before = conn.execute(snapshot).fetchall()

        def answers() -> list:
            query = to_signed(centre)
            return [conn.execute("SELECT id, distance FROM ahash_search(%s, %s, %s, NULL, %s)",
                                 (c, query, t, a)).fetchall()
                    for a in ("ahash", "dhash") for c in (1, None) for t in (4, 10)] + [
                conn.execute("SELECT id, distance FROM ahash_nearest(%s, %s, 20, %s)",
                             (c, query, a)).fetchall()
                for a in ("ahash", "dhash") for c in (2, None)]

        def chunk_index_keys() -> set[str]:
            return {r[0] for r in conn.execute(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index"
                " WHERE indrelid = 'image_hashes'::regclass"
                " AND indexrelid::regclass::text LIKE 'image_hashes_c_\\_idx'").fetchall()}

        expected = answers()
        assert sum(map(len, expected)) > 500
        assert all("(c" in k and ", algorithm_code, company_id)" in k
                   for k in chunk_index_keys()) and len(chunk_index_keys()) == 4
        store.downgrade("0009")
        assert conn.execute(snapshot).fetchall() == before
        assert answers() == expected
        assert all(", algorithm, company_id)" in k for k in chunk_index_keys())
        assert conn.execute("SELECT to_regproc('ahash_algorithm_code')").fetchone()[0] is None
        store.migrate()
        assert conn.execute(snapshot).fetchall() == before
        assert answers() == expected
        assert all(", algorithm_code, company_id)" in k for k in chunk_index_keys())
        assert store.partitions() == partitions
