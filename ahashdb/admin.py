"""Administration: the table's layout (hash partitions), row-level security, and stats."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from . import citus
from .connection import read_revision
from .ddl import (
    INDEX_DDL,
    RLS_DISABLE_STATEMENTS,
    RLS_ENABLE_STATEMENTS,
    RLS_ENABLE_STRICT_STATEMENTS,
)
from .errors import InvalidInput
from .hashes import LOW_INFORMATION_BITS

__all__ = ["partition", "partitions", "row_level_security", "set_row_level_security", "stats"]


#: Row-level security modes: what ``rls enable`` (trusted) and ``rls enable --strict`` make.
RLS_MODES = {"off": RLS_DISABLE_STATEMENTS, "trusted": RLS_ENABLE_STATEMENTS,
             "strict": RLS_ENABLE_STRICT_STATEMENTS}


def set_row_level_security(conn: psycopg.Connection, mode: str) -> None:
    """Put image_hashes' row-level security in ``mode`` (off, trusted or strict), in one
    transaction."""
    if mode not in RLS_MODES:
        raise InvalidInput(f"row-level security mode {mode!r}: expected off, trusted or strict")
    if mode == "strict" and citus.is_distributed(conn):
        raise InvalidInput("strict row-level security binds a key to one backend of one server,"
                           " which Citus's workers cannot see: use trusted mode on Citus")
    with conn.transaction():
        run_script(conn, RLS_MODES[mode])


def run_script(conn: psycopg.Connection, statements: Iterable[str]) -> None:
    """Run ``statements`` one at a time, as Citus wants DDL: it propagates one command per
    statement to the workers."""
    for statement in statements:
        conn.execute(statement)


def row_level_security(conn: psycopg.Connection) -> str:
    """image_hashes' row-level security: "off", "trusted" (the company in the setting
    ahashdb.company_id), "strict" (the company a key bound the transaction to) or "closed"
    (on with no policy: roles other than the owner see nothing)."""
    row = conn.execute(
        "SELECT c.relrowsecurity, (SELECT pg_get_expr(p.polqual, p.polrelid) FROM pg_policy p"
        " WHERE p.polrelid = c.oid AND p.polname = 'ahashdb_tenant')"
        " FROM pg_class c WHERE c.oid = 'image_hashes'::regclass").fetchone()
    if not row or not row[0]:
        return "off"
    if row[1] is None:
        return "closed"
    return "strict" if "ahash_bound_company" in row[1] else "trusted"


def partitions(conn: psycopg.Connection) -> int:
    """How many hash partitions (by company_id) ``image_hashes`` has; 1 when plain."""
    row = conn.execute(
        "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT count(*) FROM pg_inherits"
        " WHERE inhparent = c.oid) ELSE 1 END FROM pg_class c"
        " WHERE c.oid = 'image_hashes'::regclass").fetchone()
    return int(row[0]) if row else 1

def partition(conn: psycopg.Connection, partitions: int) -> None:
    """Rebuild ``image_hashes`` hash-partitioned by company_id into ``partitions`` tables
    (``1``: back to one plain table), in one transaction that locks out writers.

    Rows keep their ids; indexes, grants and row-level security carry over; the SQL
    functions keep working unchanged (each company lives in one partition, so a
    company-scoped search touches one partition's indexes). Then VACUUM ANALYZE.
    """
    if isinstance(partitions, bool) or not isinstance(partitions, int) \
            or not 1 <= partitions <= 1024:
        raise InvalidInput(f"partitions {partitions!r}: expected 1 to 1024")
    if citus.is_distributed(conn):
        raise InvalidInput("image_hashes is distributed by Citus, which already splits it by"
                           " company into shards: partition is for one server")
    with conn.transaction():
        conn.execute("LOCK TABLE image_hashes IN ACCESS EXCLUSIVE MODE")
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        owner, acl, comment = conn.execute(
            "SELECT pg_get_userbyid(relowner), relacl, obj_description(oid, 'pg_class')"
            " FROM pg_class WHERE oid = 'image_hashes'::regclass").fetchone()
        mode = row_level_security(conn)
        grants = conn.execute(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
            " ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type"
            " FROM pg_class c, aclexplode(c.relacl) a"
            " WHERE c.oid = 'image_hashes'::regclass AND a.grantee <> c.relowner"
        ).fetchall() if acl else []
        conn.execute("ALTER TABLE image_hashes RENAME TO ahashdb_old_image_hashes")
        for name in INDEX_DDL:
            conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(name), sql.Identifier(f"ahashdb_old_{name}")))
        by_company = sql.SQL(" PARTITION BY HASH (company_id)" if partitions > 1 else "")
        conn.execute(sql.SQL(
            "CREATE TABLE image_hashes (LIKE ahashdb_old_image_hashes INCLUDING DEFAULTS"
            " INCLUDING GENERATED INCLUDING IDENTITY INCLUDING COMMENTS){}").format(
                by_company))
        for i in range(partitions if partitions > 1 else 0):
            conn.execute(sql.SQL(
                "CREATE TABLE {} PARTITION OF image_hashes"
                " FOR VALUES WITH (MODULUS {}, REMAINDER {})").format(
                    sql.Identifier(f"image_hashes_p{i}"), sql.Literal(partitions),
                    sql.Literal(i)))
        conn.execute(
            "INSERT INTO image_hashes (id, company_id, meta_id, algorithm, hash, source,"
            " hasher, created_at) OVERRIDING SYSTEM VALUE SELECT id, company_id, meta_id,"
            " algorithm, hash, source, hasher, created_at FROM ahashdb_old_image_hashes")
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('image_hashes', 'id'),"
            " coalesce((SELECT max(id) FROM image_hashes), 0) + 1, false)")
        for ddl in INDEX_DDL.values():
            conn.execute(ddl)
        conn.execute("DROP TABLE ahashdb_old_image_hashes")
        for grantee, privilege in grants:
            conn.execute(sql.SQL("GRANT {} ON image_hashes TO {}").format(
                sql.SQL(privilege), sql.SQL(grantee)))
        conn.execute(sql.SQL("ALTER TABLE image_hashes OWNER TO {}").format(
            sql.Identifier(owner)))
        # (LIKE … INCLUDING COMMENTS copies the columns' comments, not the table's own)
        conn.execute(sql.SQL("COMMENT ON TABLE image_hashes IS {}").format(
            sql.Literal(comment)))
        if mode in RLS_MODES:
            run_script(conn, RLS_MODES[mode])
        else:  # closed: on, with no policy
            conn.execute("ALTER TABLE image_hashes ENABLE ROW LEVEL SECURITY")
    conn.execute("VACUUM (ANALYZE) image_hashes")


def stats(conn: psycopg.Connection, company_id: int | None) -> dict[str, Any]:
    """Rows per company, sizes, degenerate hashes, server version and schema revision."""
    where, params = ("WHERE company_id = %s", (company_id,)) \
        if company_id is not None else ("", ())
    per_company = conn.execute(
        f"SELECT company_id, count(*) FROM image_hashes {where}"
        " GROUP BY company_id ORDER BY company_id",
        params,
    ).fetchall()
    degenerate = conn.execute(
        "SELECT count(*) FILTER (WHERE hash = 0), count(*) FILTER (WHERE hash = -1),"
        " count(*) FILTER (WHERE bit_count(hash::bit(64)) NOT BETWEEN %s AND %s)"
        f" FROM image_hashes {where}",
        (LOW_INFORMATION_BITS + 1, 63 - LOW_INFORMATION_BITS, *params),
    ).fetchone()
    distributed = citus.is_distributed(conn)
    if distributed:  # the coordinator's table is a shell: the sizes are the shards'
        sizes = conn.execute(
            "SELECT citus_table_size('image_hashes'), citus_total_relation_size('image_hashes')"
            " - citus_table_size('image_hashes')").fetchone()
        indexes = []
    else:
        # A partitioned table's sizes are its partitions' (the parent stores nothing).
        tables = ("SELECT 'image_hashes'::regclass UNION ALL SELECT inhrelid FROM pg_inherits"
                  " WHERE inhparent = 'image_hashes'::regclass")
        sizes = conn.execute(
            f"SELECT sum(pg_table_size(t)), sum(pg_indexes_size(t)) FROM ({tables}) AS p(t)"
        ).fetchone()
        indexes = conn.execute(
            "SELECT coalesce(pi.inhparent, i.indexrelid)::regclass::text,"
            " sum(pg_relation_size(i.indexrelid))::bigint"
            f" FROM pg_index i LEFT JOIN pg_inherits pi ON pi.inhrelid = i.indexrelid"
            f" WHERE i.indrelid IN ({tables}) GROUP BY 1 ORDER BY 1"
        ).fetchall()
    version = conn.execute("SHOW server_version").fetchone()
    # Which imagehash/Pillow versions made the rows: hashes from different versions may
    # differ by a bit or two for the same image (drift).
    made_by = conn.execute(
        "SELECT h.algorithm::text, k.hash_size, k.imagehash_version, k.pillow_version,"
        f" k.decode, count(*) FROM (SELECT algorithm, hasher FROM image_hashes {where}) AS h"
        " LEFT JOIN ahash_hashers k ON k.id = h.hasher GROUP BY h.algorithm, 2, 3, 4, 5"
        " ORDER BY h.algorithm, 3 NULLS FIRST, 4 NULLS FIRST, 5 NULLS FIRST",
        params).fetchall()
    by_algorithm: dict[str, int] = {}
    for algorithm, *_, n in made_by:
        by_algorithm[algorithm] = by_algorithm.get(algorithm, 0) + n
    total = sum(n for _, n in per_company)
    return {
        "server_version": version[0] if version else None,
        "schema_revision": read_revision(conn),
        "rows": total,
        "companies": {c: n for c, n in per_company},
        "algorithms": by_algorithm,
        "hashed_by": [
            {"algorithm": a, "hash_size": size, "imagehash": ih, "pillow": pil,
             "decode": decode, "rows": n}
            for a, size, ih, pil, decode, n in made_by
        ],
        "all_zero_hashes": degenerate[0] if degenerate else 0,
        "all_one_hashes": degenerate[1] if degenerate else 0,
        "low_information_hashes": degenerate[2] if degenerate else 0,
        "partitions": partitions(conn),
        "table_bytes": int(sizes[0] or 0) if sizes else 0,
        "index_bytes": int(sizes[1] or 0) if sizes else 0,
        "indexes": {name: size for name, size in indexes},
        **({"citus_rows_per_node": citus.rows_per_node(conn, dict(per_company))}
           if distributed else {}),
    }


#: What an application role may do: rows of image_hashes and ahash_decisions (under
#: row-level security), read the shared tables, and record a new imagehash/Pillow version
#: (a row no search reads).
APPLICATION_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, DELETE ON image_hashes TO {role}",
    "GRANT SELECT ON ahash_chunk_masks, alembic_version TO {role}",
    "GRANT SELECT, INSERT ON ahash_hashers TO {role}",
    "GRANT SELECT, INSERT, DELETE ON ahash_decisions TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ahash_sources TO {role}",
)
_SHARED = ("image_hashes, ahash_chunk_masks, ahash_hashers, alembic_version, ahash_decisions,"
           " ahash_sources")


def create_application_role(conn: psycopg.Connection, name: str,
                            password: str | None) -> bool:
    """Create (or update) login role ``name`` with exactly :data:`APPLICATION_GRANTS`, and
    turn row-level security on so that it sees one company at a time. Returns True when
    the role was new. Idempotent: a second call resets its grants (and password, if given)."""
    role = sql.Identifier(name)
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        statement = sql.SQL("{} {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS").format(
            verb, role)
        if password is not None:
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
        conn.execute(statement)
        conn.execute(sql.SQL(f"REVOKE ALL ON {_SHARED} FROM {{}}").format(role))
        for grant in APPLICATION_GRANTS:
            conn.execute(sql.SQL(grant).format(role=role))
        if row_level_security(conn) == "off":
            run_script(conn, RLS_ENABLE_STATEMENTS)
    return not exists
