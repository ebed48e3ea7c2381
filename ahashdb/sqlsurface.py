"""Today's whole SQL surface as one readable file, written from a database at head.

``ahashdb/sql/schema.sql`` is this module's output for a database migrated to the newest
revision: every enum, table, index and ``ahash_*`` function exactly as the migrations leave
them (functions as ``pg_get_functiondef`` prints them), in an order that could create them.
A test regenerates it and fails when the committed file has drifted. To rewrite it::

    python -m ahashdb.sqlsurface [DATABASE_URL] > ahashdb/sql/schema.sql
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg

from .ddl import RLS_ENABLE, RLS_ENABLE_STRICT

__all__ = ["SCHEMA_SQL", "dump"]

#: The committed file.
SCHEMA_SQL = Path(__file__).resolve().parent / "sql" / "schema.sql"

TABLES = ("ahash_api_keys", "ahash_bindings", "ahash_chunk_masks", "ahash_decisions",
          "ahash_hashers", "ahash_sources", "image_hashes")

_HEADER = """\
-- ahashdb: the whole SQL surface at schema revision {revision}, as the migrations leave it.
-- Generated from a migrated database by `python -m ahashdb.sqlsurface`; a test checks it.
-- Read it; do not run it: `ahashdb migrate` creates all of this (and upgrades older schemas).
"""


def _enums(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT t.typname, array_agg(quote_literal(e.enumlabel) ORDER BY e.enumsortorder)"
        " FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"
        " WHERE t.typnamespace = 'public'::regnamespace AND t.typname LIKE 'ahash%'"
        " GROUP BY t.typname ORDER BY t.typname").fetchall()
    return [f"CREATE TYPE {name} AS ENUM ({', '.join(labels)});" for name, labels in rows]


def _table(conn: psycopg.Connection, table: str) -> str:
    columns = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
        " a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid)"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d"
        "   ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum", (table,)).fetchall()
    lines = []
    for name, type_, not_null, identity, generated, expression in columns:
        line = f"{name} {type_}"
        if identity:
            line += f" GENERATED {'ALWAYS' if identity == 'a' else 'BY DEFAULT'} AS IDENTITY"
        elif generated:
            line += f" GENERATED ALWAYS AS ({expression}) STORED"
        elif expression is not None:
            line += f" DEFAULT {expression}"
        if not_null:
            line += " NOT NULL"
        lines.append(line)
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'c', 'f')"
        " ORDER BY contype, conname", (table,)).fetchall()
    lines += [f"CONSTRAINT {name} {definition}" for name, definition in constraints]
    body = ",\n  ".join(lines)
    unlogged = conn.execute("SELECT relpersistence = 'u' FROM pg_class WHERE oid = %s::regclass",
                            (table,)).fetchone()
    kind = "UNLOGGED TABLE" if unlogged and unlogged[0] else "TABLE"
    out = f"CREATE {kind} {table} (\n  {body}\n);"
    comment = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')",
                           (table,)).fetchone()
    if comment and comment[0]:
        quoted = conn.execute("SELECT quote_literal(%s)", (comment[0],)).fetchone()
        out += f"\nCOMMENT ON TABLE {table} IS {quoted[0] if quoted else ''};"
    indexes = conn.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
        " ORDER BY c.relname", (table,)).fetchall()
    return "\n".join([out, *(f"{d};" for (d,) in indexes)])


def _functions(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """``ahash_*`` definitions: (those a table's columns may use: immutable, reading no
    table; the rest), each list ordered so that a function comes after what it calls."""
    rows = conn.execute(
        "SELECT p.oid, p.proname, pg_get_function_identity_arguments(p.oid),"
        " p.provolatile = 'i', pg_get_functiondef(p.oid) FROM pg_proc p"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'ahash%'"
        " ORDER BY p.proname, 3").fetchall()
    names = {oid: name for oid, name, *_ in rows}
    calls = {oid: {other for other, name in names.items()
                   if other != oid and f"{name}(" in definition}
             for oid, _, _, _, definition in rows}
    done: list[int] = []

    def visit(oid: int, path: tuple[int, ...] = ()) -> None:
        if oid in done or oid in path:
            return
        for other in sorted(calls[oid], key=lambda o: names[o]):
            visit(other, (*path, oid))
        done.append(oid)

    for oid, *_ in rows:
        visit(oid)
    by_oid = {oid: (immutable, definition.strip()) for oid, _, _, immutable, definition in rows}
    early = [f"{by_oid[o][1]};" for o in done if by_oid[o][0]]
    late = [f"{by_oid[o][1]};" for o in done if not by_oid[o][0]]
    return early, late


def dump(conn: psycopg.Connection) -> str:
    """The SQL surface of the database behind ``conn`` (see the module's docstring)."""
    from .connection import read_revision

    early, late = _functions(conn)
    policy = "\n".join(f"-- {line}" for line in RLS_ENABLE.strip().splitlines())
    strict = "\n".join(f"-- {line}" for line in RLS_ENABLE_STRICT.strip().splitlines())
    sections = [
        _HEADER.format(revision=read_revision(conn)),
        "-- Types\n\n" + "\n\n".join(_enums(conn)),
        "-- Functions the tables' generated columns and other functions build on (immutable)\n\n"
        + "\n\n".join(early),
        "-- Tables and their indexes\n\n"
        + "\n\n".join(_table(conn, t) for t in TABLES),
        "-- Functions that read the tables: the searches and the tenant binding\n\n"
        + "\n\n".join(late),
        "-- Row-level security is not part of the migrations: `ahashdb rls enable` runs\n"
        + policy + "\n\n-- and `ahashdb rls enable --strict` runs\n" + strict,
    ]
    return "\n\n".join(s.rstrip() for s in sections) + "\n"


def main() -> None:
    """Print the SQL surface of ``sys.argv[1]`` (default: ahashdb's own database)."""
    from .config import database_url, libpq_url

    url = database_url(sys.argv[1] if len(sys.argv) > 1 else None)
    with psycopg.connect(libpq_url(url)) as conn:
        sys.stdout.write(dump(conn))


if __name__ == "__main__":
    main()
