"""Citus: the migrated schema, distributed by company across a Citus cluster.

:func:`enable` runs on the coordinator of a migrated database, and is idempotent:

- the small shared tables become reference tables (a copy on every node);
- ``image_hashes`` is distributed by ``company_id``, and the other per-company tables
  (``ahash_sources``, ``ahash_decisions``) are colocated with it, so one company's rows of
  all three live in one shard group on one worker;
- the company-scoped searches are distributed by their ``company`` argument and
  colocated with ``image_hashes``, so a call naming a company is delegated whole to the
  worker that holds it (one round trip);
- ``SET LOCAL`` reaches the workers (``citus.propagate_set_commands``), so row-level
  security's ``ahashdb.company_id`` applies there inside a transaction block;
- the search functions plan each call with its values (``plan_cache_mode =
  force_custom_plan``): Citus cannot plan a generic plan's parameters, and on one server
  the static generic plan is what keeps searches fast, so the migrations keep it there.

``ahashdb migrate`` on a distributed database runs :func:`enable` again after upgrading,
so tables and functions that a later revision creates or replaces are distributed too.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from .errors import InvalidInput

__all__ = ["DISTRIBUTED_TABLES", "REFERENCE_TABLES", "enable", "is_distributed", "status"]

#: Small tables every node reads: probe masks, hasher versions, API keys' digests.
REFERENCE_TABLES = ("ahash_chunk_masks", "ahash_hashers", "ahash_api_keys")
#: Tables of one company's rows, distributed by company_id; the first is the anchor the
#: others (and the functions) are colocated with.
DISTRIBUTED_TABLES = ("image_hashes", "ahash_sources", "ahash_decisions")
#: Functions delegated to the worker holding ``company`` when called on their own outside
#: a transaction block. (ahash_insert_if_new is not: it takes its locks on the node it runs
#: on, so every call of it runs on the coordinator, and its statements go to the worker.)
DELEGATED_FUNCTIONS = (
    "ahash_search(bigint,bigint,integer,integer,ahash_algorithm)",
    "ahash_nearest(bigint,bigint,integer,ahash_algorithm,integer)",
)
#: Functions whose statements must be planned with their values on Citus.
CUSTOM_PLAN_FUNCTIONS = (
    "ahash_search_index(bigint,bigint,integer,integer,ahash_algorithm)",
    "ahash_nearest(bigint,bigint,integer,ahash_algorithm,integer)",
)
DEFAULT_SHARD_COUNT = 32


def citus_version(conn: psycopg.Connection) -> str | None:
    """The Citus extension's version in this database, or None without Citus."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()
    return row[0] if row else None


def is_distributed(conn: psycopg.Connection) -> bool:
    """True when ``image_hashes`` is a Citus distributed table."""
    if citus_version(conn) is None:
        return False
    row = conn.execute("SELECT 1 FROM pg_dist_partition"
                       " WHERE logicalrelid = to_regclass('image_hashes')").fetchone()
    return row is not None


def _citus_kind(conn: psycopg.Connection, table: str) -> str | None:
    row = conn.execute("SELECT partmethod FROM pg_dist_partition"
                       " WHERE logicalrelid = to_regclass(%s)", (table,)).fetchone()
    return None if row is None else {"h": "distributed", "n": "reference"}.get(row[0], row[0])


def _exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether a table (a bare name) or a function (a signature) exists."""
    check = "to_regprocedure(%s)" if "(" in name else "to_regclass(%s)"
    return conn.execute(f"SELECT {check} IS NOT NULL", (name,)).fetchone()[0]


def _delegated(conn: psycopg.Connection, signature: str) -> bool:
    """Whether the function is distributed by one of its arguments (delegated)."""
    row = conn.execute(
        "SELECT o.distribution_argument_index IS NOT NULL FROM pg_dist_object o"
        " WHERE o.classid = 'pg_proc'::regclass AND o.objid = to_regprocedure(%s)",
        (signature,)).fetchone()
    return bool(row and row[0])


def enable(conn: psycopg.Connection, shard_count: int | None = None) -> list[str]:
    """Distribute the schema (see the module); returns what it changed, empty when all was
    in place already. ``shard_count`` applies when ``image_hashes`` is first distributed."""
    from .admin import partitions, row_level_security

    if shard_count is not None and not 1 <= shard_count <= 64000:
        raise InvalidInput(f"shard count {shard_count}: expected 1 to 64000")
    if citus_version(conn) is None:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'citus'").fetchone()
        if available is None:
            raise InvalidInput("this PostgreSQL has no Citus extension: run ahashdb citus"
                               " enable on a Citus coordinator")
        try:
            conn.execute("CREATE EXTENSION citus")
        except psycopg.Error as exc:
            raise InvalidInput("CREATE EXTENSION citus failed (the server needs"
                               f" shared_preload_libraries = 'citus'): {exc}") from exc
    if conn.execute("SELECT to_regclass('image_hashes')").fetchone()[0] is None:
        raise InvalidInput("this database has no ahashdb schema: run `ahashdb migrate` first")
    if partitions(conn) > 1 and not is_distributed(conn):
        raise InvalidInput("image_hashes is hash-partitioned: run `ahashdb partition 1` first;"
                           " Citus distributes the plain table")
    if row_level_security(conn) == "strict":
        raise InvalidInput(
            "strict row-level security binds a key to one backend of one server, which"
            " Citus's workers cannot see: run `ahashdb rls enable` (trusted mode) first")
    changed: list[str] = []
    # (Objects a later revision makes are skipped here; `migrate` distributes them then.)
    for table in REFERENCE_TABLES:
        if _exists(conn, table) and _citus_kind(conn, table) is None:
            conn.execute("SELECT create_reference_table(%s)", (table,))
            conn.execute("SELECT truncate_local_data_after_distributing_table(%s)", (table,))
            changed.append(f"{table}: reference table")
    anchor = DISTRIBUTED_TABLES[0]
    for table in DISTRIBUTED_TABLES:
        if _exists(conn, table) and _citus_kind(conn, table) is None:
            if table == anchor:
                conn.execute("SELECT create_distributed_table(%s, 'company_id',"
                             " shard_count := %s)",
                             (table, shard_count or DEFAULT_SHARD_COUNT))
            else:
                conn.execute("SELECT create_distributed_table(%s, 'company_id',"
                             " colocate_with := %s)", (table, anchor))
            conn.execute("SELECT truncate_local_data_after_distributing_table(%s)", (table,))
            changed.append(f"{table}: distributed by company_id")
    for signature in DELEGATED_FUNCTIONS:
        if not _exists(conn, signature):
            continue
        if not _delegated(conn, signature):
            conn.execute("SELECT create_distributed_function(%s, 'company',"
                         " colocate_with := %s)", (signature, anchor))
            changed.append(f"{signature.split('(')[0]}: delegated by company")
    # Row-level security's company (SET LOCAL ahashdb.company_id) must reach the workers.
    setting = conn.execute(
        "SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE d.datname = current_database() AND s.setrole = 0"
        " AND 'citus.propagate_set_commands=local' = ANY(s.setconfig)").fetchone()
    if setting is None:
        conn.execute(sql.SQL("ALTER DATABASE {} SET citus.propagate_set_commands = 'local'")
                     .format(sql.Identifier(conn.info.dbname)))
        changed.append("database: SET LOCAL propagated to the workers")
    for signature in CUSTOM_PLAN_FUNCTIONS:
        if not _exists(conn, signature):
            continue
        row = conn.execute("SELECT %s = ANY(coalesce(proconfig, '{}')) FROM pg_proc"
                           " WHERE oid = %s::regprocedure",
                           ("plan_cache_mode=force_custom_plan", signature)).fetchone()
        if not (row and row[0]):
            # (the signature names a known function; regprocedure checked it above)
            conn.execute(f"ALTER FUNCTION {signature} SET plan_cache_mode = 'force_custom_plan'")
            changed.append(f"{signature.split('(')[0]}: planned per call")
    return changed


def status(conn: psycopg.Connection) -> dict[str, Any]:
    """What is distributed: the Citus version, the nodes, each table's kind, the delegated
    functions, and the shard placements (shards and bytes) per node."""
    version = citus_version(conn)
    if version is None:
        return {"citus": None, "distributed": False}
    nodes = conn.execute(
        "SELECT nodename, nodeport, noderole::text, isactive, shouldhaveshards, groupid = 0"
        " FROM pg_dist_node ORDER BY groupid, nodeid").fetchall()
    tables = {t: _citus_kind(conn, t) or "local"
              for t in (*REFERENCE_TABLES, *DISTRIBUTED_TABLES)}
    functions = {}
    for signature in DELEGATED_FUNCTIONS:
        functions[signature.split("(")[0]] = (
            "delegated by company" if _delegated(conn, signature) else "not distributed")
    placements = conn.execute(
        "SELECT nodename, nodeport, count(*), coalesce(sum(shard_size), 0)::bigint"
        " FROM citus_shards WHERE table_name = 'image_hashes'::regclass"
        " GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    shard_count = conn.execute("SELECT shard_count FROM citus_tables"
                               " WHERE table_name = 'image_hashes'::regclass").fetchone()
    return {
        "citus": version,
        "distributed": tables[DISTRIBUTED_TABLES[0]] == "distributed",
        "nodes": [{"node": f"{h}:{p}", "role": "coordinator" if coord else "worker",
                   "active": active, "holds_shards": shards}
                  for h, p, _role, active, shards, coord in nodes],
        "tables": tables,
        "functions": functions,
        "shard_count": shard_count[0] if shard_count else None,
        "image_hashes_placements": [{"node": f"{h}:{p}", "shards": n, "bytes": size}
                                    for h, p, n, size in placements],
    }


def rows_per_node(conn: psycopg.Connection, companies: dict[int, int]) -> dict[str, int]:
    """``companies`` ({company_id: rows}) summed by the node that holds each company."""
    if not companies:
        return {}
    found = conn.execute(
        "SELECT c, s.nodename || ':' || s.nodeport FROM unnest(%s::bigint[]) AS c"
        " JOIN citus_shards s ON s.shardid ="
        " get_shard_id_for_distribution_column('image_hashes', c)",
        (list(companies),)).fetchall()
    per_node: dict[str, int] = {}
    for company, node in found:
        per_node[node] = per_node.get(node, 0) + companies[company]
    return dict(sorted(per_node.items()))
