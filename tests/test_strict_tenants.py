"""Strict row-level security: an application role sees another company's rows by no SQL of
its own (SET, hand-written queries, any ahash_* function), only by ahash_login with that
company's key, and only for that transaction."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from ahashdb import HashStore, InvalidInput
from ahashdb.config import libpq_url
from tests.test_cli import run as cli

Q = 0x00FF  # every stored row is within 3 bits of it


@pytest.fixture
def strict(store: HashStore) -> Iterator[tuple[str, str, str]]:
    """(url of an application role, company 1's key, company 2's key), strict mode on."""
    name = f"ahashdb_strict_{os.getpid()}"
    conn = store.connection
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    store.create_application_role(name, "pw")
    store.insert_many([(0x00FF, 1, 10), (0x00FE, 1, 11), (0x00FF, 2, 20), (0x00FB, 2, 21)])
    key1, key2 = store.create_key(1, "one"), store.create_key(2, "two")
    store.enable_strict_row_level_security()
    url = make_url(store.url).set(username=name, password="pw").render_as_string(False)
    yield libpq_url(url), key1, key2
    store.disable_row_level_security()
    conn.execute("DELETE FROM ahash_api_keys")
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _companies(conn: psycopg.Connection, statement: str, *params: object) -> set[int]:
    return {r[0] for r in conn.execute(statement, params).fetchall()}


SEARCHES = [
    "SELECT company_id FROM image_hashes WHERE %s::bigint IS NULL OR company_id = %s",
    "SELECT company_id FROM ahash_search(%s, 255, 64)",
    "SELECT company_id FROM ahash_search(%s, 255, 64, NULL, 'ahash')",
    "SELECT company_id FROM ahash_search_index(%s, 255, 10, NULL, 'ahash')",
    "SELECT company_id FROM ahash_search_scan(%s, 255, 64, NULL, 'ahash')",
    "SELECT company_id FROM ahash_nearest(%s, 255, 10)",
    "SELECT company_id FROM ahash_nearest(%s, 255, 10, 'ahash')",
]


def _every_search(conn: psycopg.Connection, company: int | None) -> set[int]:
    seen: set[int] = set()
    for statement in SEARCHES:
        seen |= _companies(conn, statement, *[company] * statement.count("%s"))
    return seen


def test_without_a_key_no_sql_of_the_role_reads_any_company(
    strict: tuple[str, str, str], store: HashStore,
) -> None:
    url, _, _ = strict
    assert store.row_level_security_mode() == "strict"
    with psycopg.connect(url, autocommit=True) as conn:
        for company in (None, 1, 2):
            assert _every_search(conn, company) == set()
        conn.execute("SET ahashdb.company_id = '2'")
        for company in (None, 1, 2):
            assert _every_search(conn, company) == set()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO image_hashes (company_id, meta_id, hash) VALUES (2, 9, 1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ahash_insert_if_new(2, 12345, 4, 9)")
        # the planner's statistics of other companies are hidden from it too
        assert conn.execute("SELECT ahash_company_rows_estimate(2)").fetchone() == (None,)
        assert conn.execute("DELETE FROM image_hashes").rowcount == 0
        for statement in (
            "SELECT * FROM ahash_bindings", "SELECT * FROM ahash_api_keys",
            "INSERT INTO ahash_bindings VALUES (pg_backend_pid(),"
            " pg_current_xact_id()::text::bigint, 2)",
            "UPDATE ahash_api_keys SET revoked_at = NULL",
            "ALTER TABLE image_hashes NO FORCE ROW LEVEL SECURITY",
            "CREATE OR REPLACE FUNCTION ahash_bound_company() RETURNS bigint LANGUAGE sql"
            " RETURN 2",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert store.count() == 4


def test_a_key_binds_one_transaction_to_its_company(
    strict: tuple[str, str, str], store: HashStore,
) -> None:
    url, key1, key2 = strict
    with psycopg.connect(url) as conn:  # transactions, as an application or a pooler runs them
        assert conn.execute("SELECT ahash_login(%s)", (key1,)).fetchone() == (1,)
        for company in (None, 1):
            assert _every_search(conn, company) == {1}
        assert _every_search(conn, 2) == set()
        conn.execute("SET LOCAL ahashdb.company_id = '2'")
        assert _every_search(conn, None) == {1}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ahash_insert_if_new(2, 12345, 4, 9)")
        conn.rollback()
        conn.execute("SELECT ahash_login(%s)", (key1,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO image_hashes (company_id, meta_id, hash) VALUES (2, 9, 1)")
        conn.rollback()
        # the binding ended with the transaction
        assert _every_search(conn, None) == set()
        conn.rollback()
        conn.execute("SELECT ahash_login(%s)", (key2,))
        assert _every_search(conn, None) == {2}
        assert conn.execute("DELETE FROM image_hashes").rowcount == 2
        conn.commit()
    assert (store.count(company_id=1), store.count(company_id=2)) == (2, 0)
    with psycopg.connect(url, autocommit=True) as conn:  # each statement its own transaction
        conn.execute("SELECT ahash_login(%s)", (key1,))
        assert _every_search(conn, None) == set()


def test_unknown_and_revoked_keys_are_refused(strict: tuple[str, str, str],
                                              store: HashStore) -> None:
    url, key1, _ = strict
    with psycopg.connect(url, autocommit=True) as conn:
        for bad in ("ahk_nope", key1 + "x", "", key1.upper()):
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
                conn.execute("SELECT ahash_login(%s)", (bad,))
    (one,) = store.keys(company_id=1)
    assert store.revoke_key(one["id"]) and not store.revoke_key(one["id"])
    with psycopg.connect(url, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        conn.execute("SELECT ahash_login(%s)", (key1,))


def test_the_python_api_logs_in_per_transaction(strict: tuple[str, str, str]) -> None:
    url, key1, key2 = strict
    with HashStore(url, auto_migrate=False) as app:
        assert app.search(Q, company_id=1, max_distance=64) == []
        with app.login(key1) as company:
            assert company == 1
            assert {m.meta_id for m in app.search(Q, company_id=1, max_distance=64)} == {10, 11}
            assert app.search(Q, company_id=2, max_distance=64) == []
            assert [m.company_id for m in app.nearest(Q, all_companies=True, k=10)] == [1, 1]
            assert app.insert(0x0F0F, company_id=1, meta_id=12) is not None
        with app.login(key2):
            assert {m.meta_id for m in app.search(Q, all_companies=True, max_distance=64)} \
                == {20, 21}
        assert app.count() == 0
        with pytest.raises(InvalidInput, match="unknown or revoked"):
            app.login("ahk_wrong").__enter__()


def test_partitions_keep_strict_mode_and_give_roles_no_direct_access(
    strict: tuple[str, str, str], store: HashStore,
) -> None:
    url, key1, _ = strict
    store.partition(2)
    try:
        assert store.row_level_security_mode() == "strict"
        with psycopg.connect(url) as conn:
            conn.execute("SELECT ahash_login(%s)", (key1,))
            assert _every_search(conn, None) == {1}
            for child in ("image_hashes_p0", "image_hashes_p1"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT * FROM {child}")
                conn.rollback()
                conn.execute("SELECT ahash_login(%s)", (key1,))
    finally:
        store.partition(1)


def test_keys_from_the_cli(store: HashStore) -> None:
    r = cli(store.url, "keys", "create", "--company-id", "5", "--name", "web")
    assert r.exit_code == 0, r.output
    key = r.stdout.strip()
    assert key.startswith("ahk_") and len(key) > 40 and r.stdout.count("\n") == 1
    both = cli(store.url, "keys", "create", "--company-id", "5", "--all-companies")
    assert both.exit_code == 2
    listed = cli(store.url, "keys", "list", "--company-id", "5", "-f", "nl")
    assert listed.exit_code == 0 and key not in listed.stdout and '"web"' in listed.stdout
    assert store.connection.execute(
        "SELECT count(*) FROM ahash_api_keys WHERE key_hash = sha256(convert_to(%s, 'UTF8'))",
        (key,)).fetchone() == (1,)
    key_id = store.keys(5)[0]["id"]
    assert cli(store.url, "keys", "revoke", str(key_id)).exit_code == 0
    again = cli(store.url, "keys", "revoke", str(key_id))
    assert again.exit_code == 1 and "already revoked" in again.stderr
    assert cli(store.url, "rls", "enable", "--strict").exit_code == 0
    assert "strict" in cli(store.url, "rls", "status").stdout
    assert cli(store.url, "rls", "disable").exit_code == 0
    store.connection.execute("DELETE FROM ahash_api_keys")


def test_downgrading_below_strict_mode_fails_closed(make_database) -> None:  # noqa: ANN001
    url = make_database("strict_down")
    with HashStore(url, auto_migrate=False) as owner:
        owner.migrate()
        owner.insert_many([(0x00FF, 1, 10)])
        owner.enable_strict_row_level_security()
        owner.downgrade("0010")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        # The strict policy went with the functions it used. Row-level security stays on,
        # so a role other than the owner sees nothing until `rls enable` makes a policy.
        assert conn.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
                            " WHERE oid = 'image_hashes'::regclass").fetchone() == (True, False)
        assert conn.execute("SELECT count(*) FROM pg_policies"
                            " WHERE tablename = 'image_hashes'").fetchone() == (0,)
    with HashStore(url, auto_migrate=False) as owner:
        owner.migrate()
        assert owner.row_level_security_mode() == "closed"
        assert owner.count() == 1
        owner.enable_strict_row_level_security()
        assert owner.row_level_security_mode() == "strict"


def test_an_operators_key_binds_the_one_company_it_names(strict: tuple[str, str, str],
                                                          store: HashStore) -> None:
    url, key1, _ = strict
    ops = store.create_key(None, "ops")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT ahash_login(%s, 2)", (ops,)).fetchone() == (2,)
        assert _every_search(conn, None) == {2}
        conn.rollback()
        with pytest.raises(psycopg.errors.NullValueNotAllowed):
            conn.execute("SELECT ahash_login(%s)", (ops,))
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT ahash_login(%s, 2)", (key1,))  # company 1's key
        conn.rollback()
        assert conn.execute("SELECT ahash_login(%s, 1)", (key1,)).fetchone() == (1,)
    with HashStore(url, auto_migrate=False) as app, app.login(ops, company_id=1) as company:
        assert company == 1
        assert {m.company_id for m in app.search(Q, all_companies=True, max_distance=64)} \
            == {1}


def test_a_bulk_load_by_an_owner_under_forced_rls_never_empties_the_table(
        make_database) -> None:  # noqa: ANN001
    """In strict mode row-level security applies to the table's owner too, so the owner
    sees no rows of other companies: a bulk load must not take the table for empty (and
    TRUNCATE it); it refuses in one line, and every row stays."""
    url = make_database("bulk_owner")
    with HashStore(url, auto_migrate=False) as admin:
        admin.migrate()
        admin.insert_many([(i * 7919, 1, i) for i in range(50)])
        admin.enable_strict_row_level_security()
        conn = admin.connection
        conn.execute("DROP ROLE IF EXISTS ahashdb_test_bulk_owner")
        conn.execute("CREATE ROLE ahashdb_test_bulk_owner LOGIN")
        for table in ("image_hashes", "ahash_sources", "ahash_decisions"):
            conn.execute(f"ALTER TABLE {table} OWNER TO ahashdb_test_bulk_owner")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public"
                     " TO ahashdb_test_bulk_owner")
    owner_url = make_url(url).set(username="ahashdb_test_bulk_owner").render_as_string(
        hide_password=False)
    try:
        with HashStore(owner_url) as owner:
            with pytest.raises(InvalidInput, match="row-level security"):
                owner.insert_many([(i * 104729, 2, i) for i in range(20)], bulk=True)
            # and a large load without options does not pick the bulk path for itself
            with pytest.raises(psycopg.Error):  # (strict mode: no key bound, no writes)
                owner.insert_many([(i * 104729, 2, i) for i in range(150_000)])
        with HashStore(url) as admin:
            assert admin.count(company_id=1) == 50
            assert admin.connection.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'image_hashes'"
            ).fetchone()[0] == 5
    finally:
        with HashStore(url) as admin:
            admin.connection.execute("REASSIGN OWNED BY ahashdb_test_bulk_owner TO postgres")
            admin.connection.execute("DROP OWNED BY ahashdb_test_bulk_owner")
            admin.connection.execute("DROP ROLE ahashdb_test_bulk_owner")
