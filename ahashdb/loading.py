"""Writing rows: the COPY paths behind HashStore.insert_many.

A batch is one transaction. New rows are copied straight into image_hashes; a batch that
meets rows already stored goes through a staging table and INSERT … ON CONFLICT DO NOTHING.
Several writers share the index maintenance over several sessions; a bulk load drops and
rebuilds the chunk indexes around one transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from .checks import check_id, check_source
from .citus import is_distributed
from .ddl import CHUNK_INDEXES, INDEX_DDL
from .errors import AhashdbError, InvalidInput
from .hashes import (
    ALGORITHMS,
    INT64_MAX,
    INT64_MIN,
    MASK64,
    hash_of,
    is_hash_spelling,
    to_signed,
)

__all__ = ["COLUMNS", "Row", "bulk_load", "insert_batch", "insert_parallel", "normalize_rows",
           "record_sources", "source_markers"]

#: image_hashes' columns a writer fills, in COPY order; rows are tuples in this order.
COLUMNS = ("company_id", "meta_id", "algorithm", "hash", "source", "hasher")
_COPY_TYPES = ["int8", "int8", "text", "int8", "text", "int2"]
TWO64 = 1 << 64

#: A row as written: (company_id, meta_id, algorithm, signed hash, source, hasher id).
Row = tuple[int, int, str, int, "str | None", "int | None"]

def normalize_rows(
    rows: Iterable[Sequence[Any] | Mapping[str, Any]],
    algorithm: str,
    hasher: Callable[[], int],
    hashed_here: bool,
    fast: bool = False,
) -> Iterator[Row]:
    own = hasher() if hashed_here else None
    for n, row in enumerate(rows, 1):
        try:
            if isinstance(row, Mapping):
                value = row["hash"] if "hash" in row else row["image"]
                company, meta, source = row["company_id"], row["meta_id"], row.get("source")
            else:
                if len(row) not in (3, 4):
                    raise InvalidInput(
                        "expected (image_or_hash, company_id, meta_id[, source])"
                    )
                value, company, meta = row[0], row[1], row[2]
                source = row[3] if len(row) == 4 else None
            # Fast path for the common case (plain ints and str/None sources); everything
            # else goes through the full checks, which also word the errors.
            if (
                type(value) is int
                and INT64_MIN <= value <= MASK64
                and type(company) is int
                and INT64_MIN <= company <= INT64_MAX
                and type(meta) is int
                and INT64_MIN <= meta <= INT64_MAX
                and (source is None or (type(source) is str and "\x00" not in source))
            ):
                yield (company, meta, algorithm, (value - TWO64 if value > INT64_MAX else value),
                       source, own)
                continue
            image = not is_hash_spelling(value)
            yield (
                check_id("company_id", company),
                check_id("meta_id", meta),
                algorithm,
                to_signed(hash_of(value, algorithm, fast)),
                check_source(source),
                hasher() if image else own,
            )
        except KeyError as exc:
            raise InvalidInput(f"row {n}: missing field {exc.args[0]!r}") from None
        except AhashdbError as exc:
            raise type(exc)(f"row {n}: {exc}") from None


def _key_order(row: Row) -> tuple[int, int, int, int]:
    return row[0], row[1], _ALGORITHM_ORDER[row[2]], row[3]


_ALGORITHM_ORDER = {name: i for i, name in enumerate(ALGORITHMS)}


def insert_batch(conn: psycopg.Connection, batch: list[Row]) -> int:
    """Insert a batch in one transaction, skipping rows already stored; returns how many
    were added.

    New rows (the usual case) are copied straight into the table, the cheapest way in. If
    any row is already stored (a re-run, or a concurrent writer), that copy fails as a
    whole and the batch goes through a staging table and INSERT … ON CONFLICT DO NOTHING,
    which costs about twice as much per row.
    """
    # Writers that share rows wait on each other's uncommitted keys; taking the keys in one
    # global order (the primary key's) means they queue instead of deadlocking.
    batch.sort(key=_key_order)
    try:
        with conn.transaction():
            _copy(conn, "image_hashes", batch)
            return len(batch)
    except psycopg.Error as exc:
        if not _duplicate_key(exc):
            raise
    with conn.transaction():
        _ensure_stage(conn)
        _copy(conn, "ahashdb_stage", batch)
        return _insert_staged(conn)


def _duplicate_key(exc: psycopg.Error) -> bool:
    """A unique violation: as PostgreSQL reports it (23505), or as Citus relays a worker's
    during a COPY into a distributed table (XX000, with PostgreSQL's message)."""
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return True
    return isinstance(exc, psycopg.errors.InternalError_) and (
        exc.diag.message_primary or "").startswith("duplicate key value violates unique")


def _insert_staged(conn: psycopg.Connection) -> int:
    """Move the staged rows into image_hashes, in key order, skipping stored ones."""
    columns = ", ".join(COLUMNS)
    # (Counted from RETURNING: Citus's INSERT … SELECT reports the rows it read instead.)
    row = conn.execute(
        f"WITH added AS (INSERT INTO image_hashes ({columns}) SELECT {columns}"
        " FROM ahashdb_stage ORDER BY company_id, meta_id, algorithm, hash"
        " ON CONFLICT (company_id, meta_id, algorithm, hash) DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM added"
    ).fetchone()
    conn.execute("TRUNCATE ahashdb_stage")
    return int(row[0]) if row else 0


def _load_empty(conn: psycopg.Connection, rows: Iterator[Row]) -> tuple[int, int]:
    """Fill the (empty) table in the current transaction: (rows added, rows seen).

    TRUNCATE makes a new relation, so COPY may FREEZE the rows (all-visible at once) and,
    with wal_level=minimal (the embedded server), write no WAL. The primary key is built
    afterwards; if the input repeated a row, the repeats are deleted first.
    """
    conn.execute("TRUNCATE image_hashes")
    conn.execute("ALTER TABLE image_hashes DROP CONSTRAINT image_hashes_pkey")
    seen = 0
    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'image_hashes'::regclass")
    partitioned = (kind.fetchone() or ("r",))[0] == "p"  # COPY cannot FREEZE those
    statement = (
        f"COPY image_hashes ({', '.join(COLUMNS)}) FROM STDIN"
        f" (FORMAT BINARY{'' if partitioned else ', FREEZE'})"
    )
    with conn.cursor().copy(statement) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
            seen += 1
    try:
        with conn.transaction():
            conn.execute(INDEX_DDL["image_hashes_pkey"])
            return seen, seen
    except psycopg.errors.UniqueViolation:
        pass
    cur = conn.execute(
        "DELETE FROM image_hashes a USING image_hashes b"
        " WHERE a.company_id = b.company_id AND a.meta_id = b.meta_id"
        " AND a.algorithm = b.algorithm AND a.hash = b.hash AND a.id > b.id"
    )
    conn.execute(INDEX_DDL["image_hashes_pkey"])
    return seen - max(cur.rowcount, 0), seen


def _ensure_stage(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ahashdb_stage (company_id bigint, meta_id bigint,"
        " algorithm ahash_algorithm, hash bigint, source text, hasher smallint)"
    )


def _copy(conn: psycopg.Connection, table: str, batch: list[Row]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
    with conn.cursor().copy(statement) as copy:
        copy.set_types(_COPY_TYPES)
        for row in batch:
            copy.write_row(row)

def insert_parallel(conn: psycopg.Connection, connect: Callable[[], psycopg.Connection],
                    batches: Iterator[list[Row]], writers: int,
                    on_batch: Callable[[int, int], None] | None) -> int:
    """Batches over ``writers`` connections, at most one in flight on each. A failed
    batch stops the load once the batches in flight have finished (they are kept)."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    conns = [conn]
    added = 0
    pending: dict[Future[int], tuple[psycopg.Connection, int]] = {}

    def collect() -> None:
        nonlocal added
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            conn, size = pending.pop(future)
            free.append(conn)
            added_now = future.result()
            added += added_now
            if on_batch is not None:
                on_batch(added_now, size)

    try:
        conns += [connect() for _ in range(writers - 1)]
        free = list(conns)
        with ThreadPoolExecutor(writers, thread_name_prefix="ahashdb-writer") as pool:
            for batch in batches:
                if not free:
                    collect()
                conn = free.pop()
                pending[pool.submit(insert_batch, conn, batch)] = (conn, len(batch))
            while pending:
                collect()
    finally:
        for conn in conns[1:]:
            conn.close()
    return added


def bulk_load(conn: psycopg.Connection, rows: Iterator[Row],
              on_batch: Callable[[int, int], None] | None) -> int:
    """Load ``rows`` in one transaction with the chunk indexes dropped and rebuilt at the
    end (locks the table against writers meanwhile); returns how many were added."""
    with conn.transaction():
        conn.execute("LOCK TABLE image_hashes IN ACCESS EXCLUSIVE MODE")
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute("SET LOCAL work_mem = '256MB'")
        empty = _whole_table_empty(conn)
        for name in CHUNK_INDEXES:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        if empty:
            added, seen = _load_empty(conn, rows)
        else:
            seen = 0
            _ensure_stage(conn)
            while batch := list(itertools.islice(rows, 200_000)):
                _copy(conn, "ahashdb_stage", batch)
                seen += len(batch)
            added = _insert_staged(conn)
            conn.execute("TRUNCATE ahashdb_stage")
        for name in CHUNK_INDEXES:
            conn.execute(INDEX_DDL[name])
    # Statistics for the planner and for ahash_search's plan choice. (Rows loaded with
    # COPY FREEZE are already all-visible, so index-only scans need no VACUUM; after
    # the other path autovacuum sets the visibility map.)
    # Partitions cannot be loaded with FREEZE: VACUUM sets their visibility maps.
    conn.execute("VACUUM (ANALYZE) image_hashes" if _partitioned(conn)
                 else "ANALYZE image_hashes")
    if on_batch is not None:
        on_batch(added, seen)
    return added


def _whole_table_empty(conn: psycopg.Connection) -> bool:
    """Whether image_hashes holds no row at all, in the current transaction. Row-level
    security must not hide rows from this check (an owner under forced security sees only
    its company's): with it off, PostgreSQL refuses the query instead of filtering it."""
    # (its own transaction, or a savepoint in the caller's: a refusal leaves that intact)
    with conn.transaction():
        conn.execute("SET LOCAL row_security = off")
        try:
            row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM image_hashes)").fetchone()
        except psycopg.errors.InsufficientPrivilege:
            raise InvalidInput(
                "a bulk load rebuilds the whole table, and row-level security keeps part of"
                " it from this role: load without bulk, or as a role the policy does not"
                " apply to") from None
    return bool(row and row[0])


def bulk_fits(conn: psycopg.Connection) -> bool:
    """Whether a large load may take the bulk path by itself: the table is empty as a whole,
    this role owns it (it drops and rebuilds the indexes), and it is one server's table."""
    owner = conn.execute("SELECT pg_has_role(relowner, 'USAGE') FROM pg_class"
                         " WHERE oid = 'image_hashes'::regclass").fetchone()
    if not (owner and owner[0]) or is_distributed(conn):
        return False
    try:
        return _whole_table_empty(conn)
    except InvalidInput:
        return False


def _partitioned(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT relkind = 'p' FROM pg_class"
                       " WHERE oid = 'image_hashes'::regclass").fetchone()
    return bool(row and row[0])


def source_markers(conn: psycopg.Connection, company_id: int,
                   algorithm: str) -> dict[str, str]:
    """source -> change marker of what one company ingested (``ahash_sources``)."""
    rows = conn.execute("SELECT source, marker FROM ahash_sources WHERE company_id = %s"
                        " AND algorithm = %s::ahash_algorithm", (company_id, algorithm))
    return dict(rows.fetchall())


def record_sources(conn: psycopg.Connection, algorithm: str,
                   entries: list[tuple[int, str, str, int, int]]) -> int:
    """Record ``(company_id, source, marker, meta_id, signed hash)`` of inputs just stored,
    and delete the rows of earlier versions of those sources (another hash from the same
    source); returns how many old rows went. One transaction."""
    if not entries:
        return 0
    # One input listed twice in a batch is one source: the last entry is what it holds now
    # (an upsert may not touch a row twice in one statement).
    latest = {(e[0], e[1]): e for e in entries}
    columns = [list(c) for c in zip(*latest.values(), strict=True)]
    with conn.transaction():
        replaced = conn.execute(
            "DELETE FROM image_hashes h USING unnest(%s::bigint[], %s::text[], %s::bigint[])"
            " AS e(company_id, source, hash) WHERE h.company_id = e.company_id"
            " AND h.algorithm = %s::ahash_algorithm AND h.source = e.source"
            " AND h.hash <> e.hash",
            (columns[0], columns[1], columns[4], algorithm)).rowcount
        conn.execute(
            "INSERT INTO ahash_sources (company_id, algorithm, source, marker, meta_id)"
            " SELECT c, %s::ahash_algorithm, s, m, i FROM unnest(%s::bigint[], %s::text[],"
            " %s::text[], %s::bigint[]) AS e(c, s, m, i)"
            " ON CONFLICT (company_id, algorithm, source) DO UPDATE"
            " SET marker = EXCLUDED.marker, meta_id = EXCLUDED.meta_id,"
            " updated_at = EXCLUDED.updated_at",
            (algorithm, columns[0], columns[1], columns[2], columns[3]))
    return max(replaced, 0)
