"""Tenant isolation (scoping, Row-Level Security with real roles) and hostile input reaching
SQL only as bound parameters."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from ahashdb import HashStore
from ahashdb.config import libpq_url
from ahashdb.errors import AhashdbError, InvalidHash, InvalidInput
from ahashdb.hashes import from_hex, to_signed
from tests.hashgen import values_near
from tests.imagegen import photo
from tests.test_cli import run as cli

runner = CliRunner()
HOSTILE = ["'", "''; DROP TABLE image_hashes; --", "a;b", "$$", "$tag$ x $tag$", "\\", '"',
           "Robert'); DELETE FROM image_hashes WHERE ('1'='1", "x" * 10_240, "é ü 写真 🙂"]


# --- scoping ---------------------------------------------------------------------------------


def test_reads_are_scoped_to_one_company_unless_all_companies_is_explicit(
    store: HashStore,
) -> None:
    store.insert_many([(0x0F, 1, 1), (0x0F, 2, 2)])
    with pytest.raises(InvalidInput, match="company_id is required"):
        store.search(0x0F)
    with pytest.raises(InvalidInput, match="company_id is required"):
        store.nearest(0x0F)
    assert [m.company_id for m in store.search(0x0F, company_id=1)] == [1]
    assert [m.company_id for m in store.nearest(0x0F, company_id=2)] == [2]
    assert sorted(m.company_id for m in store.search(0x0F, all_companies=True)) == [1, 2]
    r = cli(store.url, "query", "--hash", "000000000000000f")
    assert r.exit_code == 1 and "--company-id is required" in r.stderr
    r = cli(store.url, "query", "--hash", "000000000000000f", "--company-id", "1", "-f", "nl")
    assert [json.loads(line)["company_id"] for line in r.stdout.splitlines()] == [1]
    r = cli(store.url, "query", "--hash", "000000000000000f", "--all-companies", "-f", "nl")
    assert sorted(json.loads(line)["company_id"] for line in r.stdout.splitlines()) == [1, 2]


# --- row-level security ----------------------------------------------------------------------


@pytest.fixture
def app_roles(store: HashStore):  # noqa: ANN201
    """Two login roles made by ``ahashdb roles create`` (not owners, no BYPASSRLS), with
    row-level security turned off again so that each test decides."""
    conn = store.connection
    can = conn.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles"
                       " WHERE rolname = current_user").fetchone()[0]
    if not can:
        pytest.fail("the test database role needs CREATEROLE to test row-level security")
    names = [f"ahashdb_app_{os.getpid()}_{k}" for k in ("a", "b")]
    for name in names:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        assert store.create_application_role(name, "pw") is True
    store.disable_row_level_security()
    base = make_url(store.url)
    urls = [base.set(username=n, password="pw").render_as_string(False) for n in names]
    yield urls
    store.disable_row_level_security()
    for name in names:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_row_level_security_keeps_each_role_inside_its_company(
    store: HashStore, app_roles: list[str], tmp_path: Path
) -> None:
    store.insert_many([(0x00FF, 1, 10), (0x00FE, 1, 11), (0x00FF, 2, 20), (0x00FD, 2, 21)])
    url_a, url_b = app_roles
    assert not store.row_level_security()
    with HashStore(url_a, auto_migrate=False) as before:
        assert before.count() == 4  # no RLS yet: grants alone let it read every tenant
    r = cli(store.url, "rls", "enable")
    assert r.exit_code == 0 and "on" in r.stdout
    assert store.row_level_security() and store.count() == 4  # the owner is not restricted

    with HashStore(url_a, auto_migrate=False, tenant=1) as a:
        assert a.count() == 2
        assert {m.meta_id for m in a.search(0x00FF, all_companies=True, max_distance=64)} \
            == {10, 11}
        assert a.search(0x00FF, company_id=2, max_distance=64) == []
        assert [m.meta_id for m in a.search(0x00FF, company_id=1, max_distance=2)] == [10, 11]
        assert a.search(0x00FF, company_id=2, max_distance=2) == []  # the index plan too
        assert a.nearest(0x00FF, company_id=2, k=5) == []
        rows = a.connection.execute("SELECT company_id FROM image_hashes").fetchall()
        assert {r[0] for r in rows} == {1}
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            a.insert(0x1234, company_id=2, meta_id=99)
        assert a.insert(0x1234, company_id=1, meta_id=99) is not None
        # an image it hashes itself records the versions that made it (ahash_hashers)
        img = tmp_path / "app.png"
        photo(3, (64, 48)).save(img)
        assert a.insert(img, company_id=1, meta_id=98, algorithm="phash") is not None
        assert a.connection.execute("SELECT hasher IS NOT NULL FROM image_hashes"
                                    " WHERE meta_id = 98").fetchone() == (True,)
        assert a.connection.execute("DELETE FROM image_hashes WHERE meta_id = 98").rowcount == 1
        # Hand-written SQL cannot widen it: a DELETE of everything removes only its own
        # company's rows (10, 11, 99), and the role may not UPDATE rows at all.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            a.connection.execute("UPDATE image_hashes SET company_id = 1")
        assert a.connection.execute("DELETE FROM image_hashes").rowcount == 3
        assert (store.count(company_id=1), store.count(company_id=2)) == (0, 2)
        store.insert_many([(0x00FF, 1, 10), (0x00FE, 1, 11)])
        # Trusted mode's limit, as documented: the setting is the application's to set, so
        # SQL that sets it reads that company (strict mode closes this: test_strict_tenants).
        a.connection.execute("SET ahashdb.company_id = '2'")
        assert {m.company_id for m in a.search(0x00FF, all_companies=True, max_distance=64)} \
            == {2}
        # without any setting the role sees nothing.
        a.connection.execute("RESET ahashdb.company_id")
        assert a.count() == 0

    with HashStore(url_b, auto_migrate=False, tenant=2) as b:
        assert sorted(m.meta_id for m in b.search(0x00FF, company_id=2, max_distance=64)) \
            == [20, 21]
        assert b.search(0x00FF, company_id=1, max_distance=64) == []

    # The CLI sets the tenant from --company-id, so it works for a restricted role too.
    r = cli(url_b, "query", "--hash", "00000000000000ff", "--company-id", "2", "-f", "nl")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2
    r = cli(url_b, "query", "--hash", "00000000000000ff", "--all-companies", "-f", "nl")
    assert r.exit_code == 0 and r.stdout == ""
    assert store.count() == 4  # nothing of the owner's view was lost
    assert cli(store.url, "rls", "disable").exit_code == 0
    with HashStore(url_a, auto_migrate=False) as after:
        assert after.count() == 4


def test_row_level_security_leaves_the_chunk_index_scans_as_narrow_as_the_owners(
    store: HashStore, app_roles: list[str]
) -> None:
    """Under row-level security only leakproof conditions may narrow an index scan. The
    chunk indexes key on algorithm_code (a smallint) and company_id, so a role kept inside
    its company reads the same chunk-index entries and pages as the owner, not those of
    other companies or algorithms under the same probe values (0010)."""
    rng = random.Random(21)
    centre, values = values_near(rng, 2500, 0, max_flips=12)
    rows = [(v, company, i) for company in (1, 2) for i, v in enumerate(values)]
    for algorithm in ("ahash", "phash"):
        store.insert_many(rows, algorithm=algorithm)
    store.connection.execute("VACUUM ANALYZE image_hashes")
    store.enable_row_level_security()
    query = to_signed(centre)
    calls = [("SELECT id FROM ahash_search(1, %s, 4)", (query,)),
             ("SELECT id FROM ahash_search(1, %s, 10)", (query,)),
             ("SELECT id FROM ahash_search(NULL, %s, 10)", (query,)),
             ("SELECT id FROM ahash_nearest(1, %s, 10)", (query,))]
    read = ("SELECT sum(pg_stat_get_xact_tuples_returned(i.indexrelid)),"
            " sum(pg_stat_get_xact_blocks_hit(i.indexrelid)"
            " + pg_stat_get_xact_blocks_fetched(i.indexrelid)) FROM pg_index i"
            " WHERE i.indrelid = 'image_hashes'::regclass"
            " AND i.indexrelid::regclass::text LIKE 'image_hashes_c_\\_idx'")

    def entries_and_pages(conn: psycopg.Connection, sql_text: str, params: tuple,
                          role: bool) -> tuple[list, tuple[int, int]]:
        with conn.transaction():
            if role:  # its all-companies form is what RLS makes of it: company 1's rows
                conn.execute("SET LOCAL ahashdb.company_id = '1'")
            before = conn.execute(read).fetchone()
            got = conn.execute(sql_text, params).fetchall()
            after = conn.execute(read).fetchone()
        return got, (after[0] - before[0], after[1] - before[1])

    with HashStore(app_roles[0], auto_migrate=False) as app:
        for sql_text, params in calls:
            owner_sql = sql_text.replace("(NULL,", "(1,")
            want, owner_read = entries_and_pages(store.connection, owner_sql, params, False)
            got, role_read = entries_and_pages(app.connection, sql_text, params, True)
            assert len(want) >= 10 and sorted(got) == sorted(want), sql_text
            assert owner_read[0] > 0, sql_text  # the chunk indexes answered
            # entries and pages each: a tuple comparison would let more pages hide behind
            # fewer entries
            assert role_read[0] <= owner_read[0] and role_read[1] <= owner_read[1], (
                sql_text, role_read, owner_read)


# --- hostile strings -------------------------------------------------------------------------


def test_hostile_sources_are_stored_verbatim_and_nul_is_rejected(store: HashStore) -> None:
    rows = [(0x1000 + i, 1, i, s) for i, s in enumerate(HOSTILE)]
    assert store.insert_many(rows) == len(HOSTILE)
    got = dict(store.connection.execute(
        "SELECT meta_id, source FROM image_hashes ORDER BY meta_id").fetchall())
    assert got == {i: s for i, s in enumerate(HOSTILE)}
    assert store.insert(0x99, company_id=1, meta_id=500, source=HOSTILE[1]) is not None
    with pytest.raises(InvalidInput, match="NUL"):
        store.insert_many([(0x2000, 1, 1000, "a\x00b")])
    with pytest.raises(InvalidInput, match="NUL"):
        store.insert(0x2000, company_id=1, meta_id=1000, source="a\x00b")
    assert store.count() == len(HOSTILE) + 1


@pytest.mark.parametrize("text", [*HOSTILE, "\x00" * 16, "0123456789abcde\x00", "g" * 16, ""])
def test_hostile_hex_is_rejected_with_a_short_clear_message(
    store: HashStore, text: str
) -> None:
    with pytest.raises(InvalidHash, match="expected") as info:
        from_hex(text)
    assert len(str(info.value)) < 200
    with pytest.raises(AhashdbError):
        store.search(text, company_id=1)
    r = cli(store.url, "query", "--hash", text, "--company-id", "1")
    assert r.exit_code == 1 and r.stderr.startswith("error: hash ")
    assert r.stderr.count("\n") == 1 and len(r.stderr) < 200
    assert store.connection.execute("SELECT to_regclass('image_hashes')").fetchone()[0]


def test_hostile_manifest_fields_are_stored_verbatim_or_rejected_per_row(
    store: HashStore, tmp_path: Path
) -> None:
    image = tmp_path / "img.jpg"
    photo(3, (200, 150)).save(image)
    records = [{"path": "img.jpg", "meta_id": i + 1, "source": s} for i, s in enumerate(HOSTILE)]
    records += [
        {"path": "img.jpg", "meta_id": "1; DROP TABLE image_hashes", "source": "x"},
        {"path": "img.jpg", "meta_id": str(2**63), "source": "x"},
        {"path": "img.jpg", "meta_id": 77, "company_id": "$$", "source": "x"},
        {"path": "img.jpg", "meta_id": 78, "source": "nul\x00byte"},
        {"path": "no\x00such.jpg", "meta_id": 79},
        {"path": "x" * 10_240 + ".jpg", "meta_id": 80},
        {"path": "'; DROP TABLE image_hashes; --.jpg", "meta_id": 81},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    r = cli(store.url, "ingest", "--manifest", str(manifest), "--company-id", "3")
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert f"{len(HOSTILE)} added, 0 already present, 7 failed" in r.stderr
    assert "expected an integer" in r.stderr and "outside the BIGINT range" in r.stderr
    assert "NUL byte" in r.stderr and "File name too long" in r.stderr
    got = dict(store.connection.execute(
        "SELECT meta_id, source FROM image_hashes WHERE company_id = 3").fetchall())
    assert got == {i + 1: s for i, s in enumerate(HOSTILE)}


@pytest.mark.parametrize("args", [
    ("query", "--hash", "0000000000000000", "--company-id", str(2**63)),
    ("query", "--hash", "0000000000000000", "--company-id", str(-(2**63) - 1)),
    ("ingest", "-", "--company-id", "1", "--meta-id", str(2**64)),
    ("delete", "--company-id", "1", "--id", str(2**63)),
    ("stats", "--company-id", str(10**30)),
])
def test_ids_outside_bigint_are_rejected_naming_the_option(
    store: HashStore, args: tuple[str, ...]
) -> None:
    r = cli(store.url, *args, input="")
    assert r.exit_code == 1, r.output
    assert "outside the BIGINT range" in r.stderr and r.stderr.startswith("error: --")
    with pytest.raises(InvalidInput, match="outside the BIGINT range"):
        store.insert(0x1, company_id=2**63, meta_id=1)


def test_an_application_role_cannot_change_shared_tables_or_the_schema(
    store: HashStore, app_roles: list[str]
) -> None:
    store.insert_many([(0x00FF, 1, 10), (0x00FB, 2, 20)])
    store.enable_row_level_security()
    before = store.search(0x00FF, company_id=2, max_distance=10)
    assert [m.meta_id for m in before] == [20]
    hostile = [
        "DELETE FROM ahash_chunk_masks WHERE weight > 0",
        "UPDATE ahash_chunk_masks SET mask = 0",
        "INSERT INTO ahash_chunk_masks VALUES (1, 1)",
        "TRUNCATE ahash_chunk_masks",
        "DELETE FROM ahash_hashers",
        "UPDATE ahash_hashers SET pillow_version = 'x'",
        "UPDATE alembic_version SET version_num = '0001'",
        "DELETE FROM alembic_version",
        "UPDATE image_hashes SET hash = 0",
        "TRUNCATE image_hashes",
        "ALTER TABLE image_hashes DISABLE ROW LEVEL SECURITY",
        "DROP POLICY ahashdb_tenant ON image_hashes",
        "ALTER TABLE image_hashes NO FORCE ROW LEVEL SECURITY",
        "DROP INDEX image_hashes_c0_idx",
        "CREATE OR REPLACE FUNCTION ahash_distance(a bigint, b bigint) RETURNS integer"
        " LANGUAGE sql RETURN 0",
        "DROP FUNCTION ahash_search_index(bigint, bigint, integer, integer, ahash_algorithm)",
    ]
    with psycopg.connect(libpq_url(app_roles[0]), autocommit=True) as conn:
        conn.execute("SET ahashdb.company_id = '1'")
        for statement in hostile:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM ahash_chunk_masks").fetchone() == (65536,)
    assert store.connection.execute(
        "SELECT count(*) FROM ahash_chunk_masks").fetchone() == (65536,)
    assert store.search(0x00FF, company_id=2, max_distance=10) == before
    assert store.row_level_security()


def test_table_output_shows_control_characters_escaped_and_csv_defuses_formulas(
    store: HashStore,
) -> None:
    store.insert(0x00FF, company_id=1, meta_id=1, source="a\x1b]0;owned\x07\x1b[31mred\rb")
    store.insert(0x00FE, company_id=1, meta_id=2, source='=HYPERLINK("http://x","y")')
    table = cli(store.url, "query", "--hash", "00000000000000ff", "--company-id", "1").stdout
    assert "\x1b" not in table and "\x07" not in table and "\r" not in table
    assert "a\\x1b]0;owned\\x07\\x1b[31mred\\x0db" in table  # still readable, escaped
    rows = cli(store.url, "query", "--hash", "00000000000000ff", "--company-id", "1",
               "-f", "csv").stdout.splitlines()
    assert any(r.endswith(''''=HYPERLINK("http://x","y")"''') or "'=HYPERLINK" in r for r in rows)
    assert not any(",=" in r or ',"=' in r for r in rows)
    # JSON keeps the stored value exactly: it is data, not a terminal or a spreadsheet.
    nl = cli(store.url, "query", "--hash", "00000000000000ff", "--company-id", "1", "-f", "nl")
    assert {json.loads(line)["source"] for line in nl.stdout.splitlines()} == {
        "a\x1b]0;owned\x07\x1b[31mred\rb", '=HYPERLINK("http://x","y")'}


# --- bounded inputs ---------------------------------------------------------------------------


def test_folder_walks_and_globs_do_not_follow_links_out_of_the_input_or_around_loops(
    store: HashStore, tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    photo(9).save(outside / "900.png")
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    photo(1).save(folder / "1.png")
    photo(2).save(folder / "sub" / "2.png")
    (folder / "sub" / "loop").symlink_to(folder)           # a loop…
    (folder / "sub" / "loop2").symlink_to(folder / "sub")  # …and a second one
    (folder / "out").symlink_to(outside)                   # a way out of the input

    def metas(*args: str) -> list[int]:
        store.connection.execute("TRUNCATE image_hashes, ahash_sources")
        r = cli(store.url, "ingest", *args, "--company-id", "1")
        assert r.exit_code == 0, r.output
        return sorted(m for _, m, _ in store.connection.execute(
            "SELECT company_id, meta_id, hash FROM image_hashes"))

    assert metas(str(folder)) == [1, 2]
    assert metas(f"{folder}/**/*.png") == [1, 2]
    assert metas(f"{folder}/*/*.png") == [2]
    # Following links is asked for: the way out is taken, each folder entered once.
    assert metas(str(folder), "--follow-links") == [1, 2, 900]
    r = cli(store.url, "ingest", str(folder), "--follow-links", "--company-id", "1")
    assert "3 inputs" in r.stderr  # each file seen once, though the loops repeat them
