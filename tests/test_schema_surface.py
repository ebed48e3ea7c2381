"""One file shows today's whole SQL surface, and each schema fact is written once.

``ahashdb/sql/schema.sql`` must be what the migrations make; the runtime's index and policy
DDL (``ahashdb.ddl``) must be what the head revision leaves; migrations stand alone."""

from __future__ import annotations

import ast

import psycopg
import pytest

from ahashdb.config import libpq_url
from ahashdb.connection import migrations_path
from ahashdb.ddl import CHUNK_INDEXES, INDEX_DDL
from ahashdb.sqlsurface import SCHEMA_SQL, dump


def test_schema_sql_is_what_the_migrations_make(database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        made = dump(conn)
    assert made == SCHEMA_SQL.read_text(), (
        "ahashdb/sql/schema.sql has drifted from the migrations: regenerate it with"
        " `python -m ahashdb.sqlsurface URL > ahashdb/sql/schema.sql` on a migrated database")
    assert made.count("CREATE OR REPLACE FUNCTION public.ahash_") >= 15
    for name in ("ahash_search", "ahash_search_index", "ahash_nearest", "ahash_chunks"):
        assert f"FUNCTION public.{name}(" in made


def test_runtime_index_ddl_rebuilds_exactly_the_heads_indexes(database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        def definitions() -> dict[str, str]:
            return dict(conn.execute(
                "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c"
                " ON c.oid = i.indexrelid WHERE i.indrelid = 'image_hashes'::regclass"
            ).fetchall())

        made_by_migrations = definitions()
        assert set(made_by_migrations) == set(INDEX_DDL)
        with conn.transaction(force_rollback=True):
            conn.execute("ALTER TABLE image_hashes DROP CONSTRAINT image_hashes_pkey")
            for name in CHUNK_INDEXES:
                conn.execute(f"DROP INDEX {name}")
            for ddl in INDEX_DDL.values():
                conn.execute(ddl)
            assert definitions() == made_by_migrations


def _migration_trees() -> list[tuple[str, ast.Module]]:
    folder = migrations_path() / "versions"
    return [(p.name, ast.parse(p.read_text())) for p in sorted(folder.glob("0*.py"))]


@pytest.mark.parametrize("name,tree", _migration_trees(), ids=lambda x: x if isinstance(x, str)
                         else "")
def test_a_migration_holds_its_sql_and_looks_back_only_to_restore(name: str,
                                                                   tree: ast.Module) -> None:
    # Module level: constants only (no calls that build SQL from another revision).
    for node in tree.body:
        if isinstance(node, ast.Assign):
            assert not any(isinstance(n, ast.Call) for n in ast.walk(node.value)), (
                f"{name}: {ast.unparse(node)[:80]} is computed, not literal text")
    # earlier_migration only inside downgrade(), and only to read a constant.
    for func in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
            if getattr(call.func, "id", None) == "earlier_migration":
                assert func.name == "downgrade", f"{name}: {func.name} loads a migration"
    assert {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} == {
        "upgrade", "downgrade"}, f"{name}: template functions"


def test_alembic_env_imports_nothing_from_the_store() -> None:
    tree = ast.parse((migrations_path() / "env.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "ahashdb.store" not in modules
    assert not any(m and m.startswith("ahashdb.store") for m in modules)
