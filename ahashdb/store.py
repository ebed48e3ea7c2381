"""HashStore: the Python API over an ahashdb database.

Every operation here is one SQL statement or one SQL function call; the CLI is a thin layer
over these methods, and SQL users call the same functions (``ahash_search``,
``ahash_nearest``) from psql.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from . import embedded
from .config import describe_target, libpq_url, redact, resolve_database_url, sqlalchemy_url
from .errors import AhashdbError, DatabaseUnavailable, InvalidInput, SchemaNotMigrated
from .hashes import (
    ALGORITHMS,
    DEFAULT_MAX_DISTANCE,
    HASH_SIZE,
    INT64_MAX,
    INT64_MIN,
    LOW_INFORMATION_BITS,
    MASK64,
    HashLike,
    ImageLike,
    check_algorithm,
    hash_of,
    hasher_versions,
    is_hash_spelling,
    to_hex,
    to_signed,
)

__all__ = ["HashStore", "Match", "SCHEMA_REVISION", "database_url", "migrations_path"]

#: The Alembic revision this code expects (a test checks it is the migrations' head).
SCHEMA_REVISION = "0010"

#: image_hashes' columns a writer fills, in COPY order; rows are tuples in this order.
_COLUMNS = ("company_id", "meta_id", "algorithm", "hash", "source", "hasher")
_COPY_TYPES = ["int8", "int8", "text", "int8", "text", "int2"]

TWO64 = 1 << 64

# New rows land all over the chunk indexes (their keys are spread on purpose): leaf pages
# left 20% free take them without splitting, where 90% full pages each split in two.
CHUNK_FILLFACTOR = 80
CHUNK_INDEXES = tuple(f"image_hashes_c{i}_idx" for i in range(4))
_INDEX_DDL = {
    "image_hashes_pkey": "ALTER TABLE image_hashes ADD CONSTRAINT image_hashes_pkey "
    "PRIMARY KEY (company_id, meta_id, algorithm, hash)",
    **{
        name: f"CREATE INDEX {name} ON image_hashes (c{i}, algorithm_code, company_id)"
        f" INCLUDE (hash, meta_id) WITH (fillfactor = {CHUNK_FILLFACTOR})"
        for i, name in enumerate(CHUNK_INDEXES)
    },
}


_TENANT = "company_id = NULLIF(current_setting('ahashdb.company_id', true), '')::bigint"
RLS_ENABLE = f"""
ALTER TABLE image_hashes ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS ahashdb_tenant ON image_hashes;
CREATE POLICY ahashdb_tenant ON image_hashes USING ({_TENANT}) WITH CHECK ({_TENANT});
"""
RLS_DISABLE = """
DROP POLICY IF EXISTS ahashdb_tenant ON image_hashes;
ALTER TABLE image_hashes DISABLE ROW LEVEL SECURITY;
"""


def migrations_path() -> Path:
    """The Alembic script folder: inside the installed package, or the source tree's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise AhashdbError(f"ahashdb's migrations folder is missing (looked in {here})")


def database_url(url: str | None) -> str:
    """The URL to use: explicit > ``$AHASHDB_DATABASE_URL`` > the embedded server (started)."""
    resolved = resolve_database_url(url)
    return resolved if resolved is not None else embedded.start()


@dataclass(frozen=True, slots=True)
class Match:
    """One stored hash found by a search. ``hash`` is 16 hex digits."""

    id: int
    company_id: int
    meta_id: int
    hash: str
    distance: int
    source: str | None
    #: With ``orientations=True``: the flip/rotation of the query that matched this row.
    orientation: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The match as a plain dict (for JSON/CSV output)."""
        return asdict(self)


def _check_id(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                value = int(value)
            else:
                raise ValueError
        except ValueError:
            raise InvalidInput(f"{name} {value!r}: expected an integer") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"{name} {value}: outside the BIGINT range -2^63 … 2^63-1")
    return value


def _check_distance(name: str, value: object, upper: int | None = 64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} {value!r}: expected an integer 0 or more")
    if upper is not None and value > upper:
        raise InvalidInput(f"{name} {value}: expected at most {upper}")
    return value


def _row_to_match(row: Sequence[Any]) -> Match:
    return Match(row[0], row[1], row[2], to_hex(row[3]), row[4], row[5])


class HashStore:
    """Perceptual hashes in PostgreSQL.

    ``HashStore()`` uses ``$AHASHDB_DATABASE_URL`` or, without it, the embedded server
    (started and migrated on first use). ``HashStore(url)`` uses any PostgreSQL >= 14; run
    :meth:`migrate` (or ``ahashdb migrate``) once on a new database.

    Usable as a context manager; :meth:`close` releases the connection.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        auto_migrate: bool | None = None,
        statement_timeout: float | None = None,
        tenant: int | None = None,
    ) -> None:
        """``statement_timeout`` (seconds) cancels any one statement that runs longer;
        ``tenant`` sets ``ahashdb.company_id`` on the connection, the company that
        Row-Level Security (:meth:`enable_row_level_security`) lets a restricted role see."""
        self._embedded = resolve_database_url(url) is None
        self.url = database_url(url)
        self.auto_migrate = self._embedded if auto_migrate is None else auto_migrate
        if statement_timeout is not None and statement_timeout < 0:
            raise InvalidInput(f"statement_timeout {statement_timeout}: expected 0 or more")
        self.statement_timeout = statement_timeout
        self.tenant = None if tenant is None else _check_id("tenant", tenant)
        self._conn: psycopg.Connection | None = None
        self._schema_checked = False
        self._hashers: dict[str, int] = {}

    # --- connection -----------------------------------------------------------------------

    def __enter__(self) -> HashStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the store reconnects if used again)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        return f"HashStore({redact(self.url)!r})"

    @property
    def is_embedded(self) -> bool:
        """True when this store uses the embedded server."""
        return self._embedded

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(
                libpq_url(self.url),
                autocommit=True,
                connect_timeout=int(os.environ.get("AHASHDB_CONNECT_TIMEOUT", "10")),
                application_name="ahashdb",
            )
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {describe_target(self.url)}: {reason}"
            ) from None
        if self.statement_timeout is not None:
            conn.execute("SELECT set_config('statement_timeout', %s, false)",
                         (f"{round(self.statement_timeout * 1000)}ms",))
        if self.tenant is not None:
            conn.execute("SELECT set_config('ahashdb.company_id', %s, false)",
                         (str(self.tenant),))
        return conn

    @property
    def connection(self) -> psycopg.Connection:
        """The psycopg connection (autocommit; batches use explicit transactions)."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        if not self._schema_checked:
            self._check_schema(self._conn)
        return self._conn

    def schema_revision(self) -> str | None:
        """The database's Alembic revision, or None when it has no ahashdb schema."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._read_revision(self._conn)

    @staticmethod
    def _read_revision(conn: psycopg.Connection) -> str | None:
        exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None

    def _check_schema(self, conn: psycopg.Connection) -> None:
        revision = self._read_revision(conn)
        if revision != SCHEMA_REVISION:
            if self.auto_migrate:
                self.migrate()
            elif revision is None:
                raise SchemaNotMigrated(
                    f"database {describe_target(self.url)} has no ahashdb schema;"
                    " run `ahashdb migrate` first"
                )
            else:
                raise SchemaNotMigrated(
                    f"database {describe_target(self.url)} is at schema revision {revision},"
                    f" this ahashdb needs {SCHEMA_REVISION}; run `ahashdb migrate`"
                )
        self._schema_checked = True

    # --- schema ---------------------------------------------------------------------------

    def alembic_config(self) -> Any:
        """An Alembic ``Config`` for this database and ahashdb's migrations."""
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(migrations_path()))
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(self.url).replace("%", "%%"))
        return cfg

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (default: the newest); safe to run concurrently."""
        self._run_alembic("upgrade", revision)

    def downgrade(self, revision: str) -> None:
        """Downgrade the schema to ``revision`` (``"base"`` drops everything ahashdb made)."""
        self._run_alembic("downgrade", revision)

    def _run_alembic(self, direction: str, revision: str) -> None:
        from alembic import command
        from sqlalchemy import create_engine, pool
        from sqlalchemy import text as sa_text

        cfg = self.alembic_config()
        engine = create_engine(sqlalchemy_url(self.url), poolclass=pool.NullPool)
        try:
            with engine.begin() as conn:
                # One migrator at a time; the others wait, then find nothing to do.
                conn.execute(sa_text("SELECT pg_advisory_xact_lock(7340580466392731649)"))
                cfg.attributes["connection"] = conn
                getattr(command, direction)(cfg, revision)
        except psycopg.Error as exc:
            if _lost_connection(exc):
                raise DatabaseUnavailable(
                    f"cannot connect to PostgreSQL at {describe_target(self.url)}: {exc}"
                ) from None
            raise
        except Exception as exc:
            orig = getattr(exc, "orig", None)
            if isinstance(orig, psycopg.Error) and _lost_connection(orig):
                raise DatabaseUnavailable(
                    f"cannot connect to PostgreSQL at {describe_target(self.url)}:"
                    f" {str(orig).strip().splitlines()[-1]}"
                ) from None
            if isinstance(orig, psycopg.Error):
                raise orig from None  # the server's own error (a migration refusing, say)
            raise
        finally:
            engine.dispose()
        self._schema_checked = direction == "upgrade" and revision in ("head", SCHEMA_REVISION)

    # --- tenant isolation -----------------------------------------------------------------

    def enable_row_level_security(self) -> None:
        """Turn on Row-Level Security for ``image_hashes``.

        Afterwards every role except the table's owner and superusers (and roles with
        BYPASSRLS) reads and writes only the rows of the company named by the session
        setting ``ahashdb.company_id`` (``HashStore(tenant=N)`` sets it; in SQL,
        ``SET ahashdb.company_id = '7'``); without the setting such a role sees no rows.
        ``ahash_search`` and ``ahash_nearest`` run as the caller, so they obey it too.
        """
        with self.connection.transaction():
            self.connection.execute(RLS_ENABLE)

    def disable_row_level_security(self) -> None:
        """Turn Row-Level Security off again (drops the policy)."""
        with self.connection.transaction():
            self.connection.execute(RLS_DISABLE)

    def row_level_security(self) -> bool:
        """True when Row-Level Security is on for ``image_hashes``."""
        row = self.connection.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'image_hashes'::regclass"
        ).fetchone()
        return bool(row and row[0])

    # --- layout ---------------------------------------------------------------------------

    def partitions(self) -> int:
        """How many hash partitions (by company_id) ``image_hashes`` has; 1 when plain."""
        row = self.connection.execute(
            "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT count(*) FROM pg_inherits"
            " WHERE inhparent = c.oid) ELSE 1 END FROM pg_class c"
            " WHERE c.oid = 'image_hashes'::regclass").fetchone()
        return int(row[0]) if row else 1

    def partition(self, partitions: int) -> None:
        """Rebuild ``image_hashes`` hash-partitioned by company_id into ``partitions`` tables
        (``1``: back to one plain table), in one transaction that locks out writers.

        Rows keep their ids; indexes, grants and row-level security carry over; the SQL
        functions keep working unchanged (each company lives in one partition, so a
        company-scoped search touches one partition's indexes). Then VACUUM ANALYZE.
        """
        if isinstance(partitions, bool) or not isinstance(partitions, int) \
                or not 1 <= partitions <= 1024:
            raise InvalidInput(f"partitions {partitions!r}: expected 1 to 1024")
        conn = self.connection
        with conn.transaction():
            conn.execute("LOCK TABLE image_hashes IN ACCESS EXCLUSIVE MODE")
            conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            owner, rls, acl = conn.execute(
                "SELECT pg_get_userbyid(relowner), relrowsecurity, relacl FROM pg_class"
                " WHERE oid = 'image_hashes'::regclass").fetchone()
            grants = conn.execute(
                "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
                " ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type"
                " FROM pg_class c, aclexplode(c.relacl) a"
                " WHERE c.oid = 'image_hashes'::regclass AND a.grantee <> c.relowner"
            ).fetchall() if acl else []
            conn.execute("ALTER TABLE image_hashes RENAME TO ahashdb_old_image_hashes")
            for name in _INDEX_DDL:
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
            for ddl in _INDEX_DDL.values():
                conn.execute(ddl)
            conn.execute("DROP TABLE ahashdb_old_image_hashes")
            for grantee, privilege in grants:
                conn.execute(sql.SQL("GRANT {} ON image_hashes TO {}").format(
                    sql.SQL(privilege), sql.SQL(grantee)))
            conn.execute(sql.SQL("ALTER TABLE image_hashes OWNER TO {}").format(
                sql.Identifier(owner)))
            if rls:
                conn.execute(RLS_ENABLE)
        conn.execute("VACUUM (ANALYZE) image_hashes")

    # --- writing --------------------------------------------------------------------------

    def insert(
        self,
        image_or_hash: ImageLike | HashLike,
        *,
        company_id: int,
        meta_id: int,
        source: str | None = None,
        algorithm: str = "ahash",
    ) -> int | None:
        """Store one hash; returns the new row's id, or None when it was already stored.

        An image is hashed by ``algorithm`` (ahash, phash, dhash or whash) and the row
        records this process's imagehash and Pillow versions; a hash value is stored as
        that algorithm's hash, with no versions recorded."""
        company_id = _check_id("company_id", company_id)
        meta_id = _check_id("meta_id", meta_id)
        algorithm = check_algorithm(algorithm)
        hashed_here = not is_hash_spelling(image_or_hash)
        h = to_signed(hash_of(image_or_hash, algorithm))
        row = self.connection.execute(
            "INSERT INTO image_hashes (company_id, meta_id, algorithm, hash, source, hasher)"
            " VALUES (%s, %s, %s::ahash_algorithm, %s, %s, %s)"
            " ON CONFLICT (company_id, meta_id, algorithm, hash) DO NOTHING RETURNING id",
            (company_id, meta_id, algorithm, h, _check_source(source),
             self.hasher_id(algorithm) if hashed_here else None),
        ).fetchone()
        return None if row is None else row[0]

    def hasher_id(self, algorithm: str = "ahash") -> int:
        """The ``ahash_hashers`` id of ``algorithm`` at this process's imagehash and Pillow
        versions (recorded on first use): what rows hashed here carry in ``hasher``."""
        algorithm = check_algorithm(algorithm)
        if algorithm not in self._hashers:
            imagehash_version, pillow_version = hasher_versions()
            key = (algorithm, HASH_SIZE, imagehash_version, pillow_version)
            conn = self.connection
            row = conn.execute(
                "INSERT INTO ahash_hashers (algorithm, hash_size, imagehash_version,"
                " pillow_version) VALUES (%s::ahash_algorithm, %s, %s, %s)"
                " ON CONFLICT (algorithm, hash_size, imagehash_version, pillow_version)"
                " DO NOTHING RETURNING id", key).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT id FROM ahash_hashers WHERE algorithm = %s::ahash_algorithm"
                    " AND hash_size = %s AND imagehash_version = %s AND pillow_version = %s",
                    key).fetchone()
            assert row is not None
            self._hashers[algorithm] = int(row[0])
        return self._hashers[algorithm]

    def insert_many(
        self,
        rows: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        batch_size: int = 50_000,
        bulk: bool = False,
        on_batch: Callable[[int, int], None] | None = None,
        algorithm: str = "ahash",
        hashed_here: bool = False,
        writers: int = 1,
    ) -> int:
        """Store many hashes with COPY; returns how many rows were added.

        ``rows`` yields ``(image_or_hash, company_id, meta_id[, source])`` tuples or dicts
        with ``hash`` (or ``image``), ``company_id``, ``meta_id`` and optional ``source``.
        All are ``algorithm`` hashes (images are hashed by it). Rows whose image was hashed
        here, and all rows when ``hashed_here`` (the caller hashed them with this process's
        imagehash and Pillow), record those versions; other rows record none.
        Rows are streamed: memory stays flat however many there are. Each batch of
        ``batch_size`` rows is its own transaction, so an interruption keeps every finished
        batch and a re-run adds only what is missing (rows already stored are skipped).

        ``bulk=True`` loads everything in one transaction with the table's indexes dropped
        and rebuilt at the end: several times faster for large loads into an empty or
        small table, and all-or-nothing. It locks the table against writers meanwhile.
        ``writers=N`` (without ``bulk``) writes N batches at once over N connections:
        maintaining the search indexes is most of a row's cost, and it is the server's
        CPU that does it (two writers: about 2x on two cores). ``on_batch(added, seen)``
        is called after each committed batch.
        """
        if batch_size < 1:
            raise InvalidInput(f"batch_size {batch_size}: expected 1 or more")
        if isinstance(writers, bool) or not isinstance(writers, int) or not 1 <= writers <= 64:
            raise InvalidInput(f"writers {writers!r}: expected 1 to 64")
        algorithm = check_algorithm(algorithm)
        normalized = _normalize_rows(rows, algorithm, lambda: self.hasher_id(algorithm),
                                     hashed_here)
        if bulk:
            return self._bulk_load(normalized, on_batch)
        batches = iter(lambda: list(itertools.islice(normalized, batch_size)), [])
        if writers > 1:
            return self._insert_parallel(batches, writers, on_batch)
        added = 0
        for batch in batches:
            added_now = _insert_batch(self.connection, batch)
            added += added_now
            if on_batch is not None:
                on_batch(added_now, len(batch))
        return added

    def _insert_parallel(self, batches: Iterator[list[Row]], writers: int,
                         on_batch: Callable[[int, int], None] | None) -> int:
        """Batches over ``writers`` connections, at most one in flight on each. A failed
        batch stops the load once the batches in flight have finished (they are kept)."""
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        conns = [self.connection]
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
            conns += [self._connect() for _ in range(writers - 1)]
            free = list(conns)
            with ThreadPoolExecutor(writers, thread_name_prefix="ahashdb-writer") as pool:
                for batch in batches:
                    if not free:
                        collect()
                    conn = free.pop()
                    pending[pool.submit(_insert_batch, conn, batch)] = (conn, len(batch))
                while pending:
                    collect()
        finally:
            for conn in conns[1:]:
                conn.close()
        return added

    def _bulk_load(self, rows: Iterator[Row], on_batch: Any) -> int:
        conn = self.connection
        with conn.transaction():
            conn.execute("LOCK TABLE image_hashes IN ACCESS EXCLUSIVE MODE")
            conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            conn.execute("SET LOCAL work_mem = '256MB'")
            empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM image_hashes)").fetchone()
            for name in CHUNK_INDEXES:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            if empty and empty[0]:
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
                conn.execute(_INDEX_DDL[name])
        # Statistics for the planner and for ahash_search's plan choice. (Rows loaded with
        # COPY FREEZE are already all-visible, so index-only scans need no VACUUM; after
        # the other path autovacuum sets the visibility map.)
        # Partitions cannot be loaded with FREEZE: VACUUM sets their visibility maps.
        conn.execute("VACUUM (ANALYZE) image_hashes" if self.partitions() > 1
                     else "ANALYZE image_hashes")
        if on_batch is not None:
            on_batch(added, seen)
        return added

    def delete(
        self,
        *,
        company_id: int,
        meta_id: int | None = None,
        ids: Iterable[int] | None = None,
    ) -> int:
        """Delete one company's rows by ``meta_id`` (its hashes of every algorithm) or by row
        ``ids``; returns how many went."""
        company_id = _check_id("company_id", company_id)
        if (meta_id is None) == (ids is None):
            raise InvalidInput("delete needs exactly one of meta_id or ids")
        if meta_id is not None:
            cur = self.connection.execute(
                "DELETE FROM image_hashes WHERE company_id = %s AND meta_id = %s",
                (company_id, _check_id("meta_id", meta_id)),
            )
        else:
            id_list = [_check_id("id", i) for i in ids or ()]
            cur = self.connection.execute(
                "DELETE FROM image_hashes WHERE company_id = %s AND id = ANY(%s)",
                (company_id, id_list),
            )
        return max(cur.rowcount, 0)

    # --- reading --------------------------------------------------------------------------

    def count(self, company_id: int | None = None, *, algorithm: str | None = None) -> int:
        """How many hashes are stored: for one company, or all when ``company_id`` is None;
        of one ``algorithm``, or of all when it is None."""
        where, params = ["true"], []
        if company_id is not None:
            where.append("company_id = %s")
            params.append(_check_id("company_id", company_id))
        if algorithm is not None:
            where.append("algorithm = %s::ahash_algorithm")
            params.append(check_algorithm(algorithm))
        row = self.connection.execute(
            f"SELECT count(*) FROM image_hashes WHERE {' AND '.join(where)}", params
        ).fetchone()
        return int(row[0]) if row else 0

    def _scope(self, company_id: int | None, all_companies: bool) -> int | None:
        if all_companies:
            if company_id is not None:
                raise InvalidInput("give either company_id or all_companies=True, not both")
            return None
        if company_id is None:
            raise InvalidInput(
                "company_id is required (pass all_companies=True to search every company)"
            )
        return _check_id("company_id", company_id)

    def search(
        self,
        image_or_hash: ImageLike | HashLike,
        *,
        company_id: int | None = None,
        max_distance: int | None = None,
        limit: int | None = None,
        all_companies: bool = False,
        orientations: bool = False,
        algorithm: str = "ahash",
    ) -> list[Match]:
        """Every stored hash within ``max_distance`` bits, closest first (ties by id).

        Exact, through ``ahash_search`` (multi-index hashing; a scan where that is cheaper).
        Scoped to ``company_id`` unless ``all_companies=True``. Compares only hashes of
        ``algorithm`` (an image query is hashed by it); ``max_distance`` defaults to the
        algorithm's :data:`~ahashdb.hashes.DEFAULT_MAX_DISTANCE`. ``orientations=True``
        (aHash only) also searches with the 8 flips/rotations of the query's grid and
        returns each row once, at its best distance, with the ``orientation`` that matched.
        """
        company = self._scope(company_id, all_companies)
        algorithm = _check_oriented(check_algorithm(algorithm), orientations)
        if max_distance is None:
            max_distance = DEFAULT_MAX_DISTANCE[algorithm]
        max_distance = _check_distance("max_distance", max_distance)
        if limit is not None:
            limit = _check_distance("limit", limit, upper=None)
        h = hash_of(image_or_hash, algorithm)
        statement = "SELECT * FROM ahash_search(%s, %s, %s, %s, %s::ahash_algorithm)"
        if orientations:
            return self._oriented(h, lambda q: self.connection.execute(
                statement, (company, q, max_distance, limit, algorithm)).fetchall(), limit)
        rows = self.connection.execute(
            statement, (company, to_signed(h), max_distance, limit, algorithm)).fetchall()
        return [_row_to_match(r) for r in rows]

    @staticmethod
    def _oriented(h: int, run: Callable[[int], list[Any]],
                  cut: int | None) -> list[Match]:
        """Search with each flip/rotation of ``h``; each row once, at its best distance
        (ties: the first orientation in ORIENTATIONS order), closest first, cut at ``cut``.
        Each orientation's own top rows suffice: a row in the overall top ``cut`` is in the
        top ``cut`` of the orientation that gives its best distance."""
        from .orient import orientations as all_orientations

        best: dict[int, Match] = {}
        seen: set[int] = set()
        for name, q in all_orientations(h).items():
            if q in seen:
                continue  # a symmetric grid: this orientation is an earlier one
            seen.add(q)
            for row in run(to_signed(q)):
                m = _row_to_match(row)
                if m.id not in best or m.distance < best[m.id].distance:
                    best[m.id] = dataclasses.replace(m, orientation=name)
        ordered = sorted(best.values(), key=lambda m: (m.distance, m.id))
        return ordered if cut is None else ordered[:cut]

    def nearest(
        self,
        image_or_hash: ImageLike | HashLike,
        *,
        company_id: int | None = None,
        k: int = 10,
        all_companies: bool = False,
        orientations: bool = False,
        algorithm: str = "ahash",
    ) -> list[Match]:
        """The ``k`` stored hashes of ``algorithm`` closest to the query, exact (ties by
        id); with ``orientations=True``, closest under any of the 8 flips/rotations (see
        search)."""
        company = self._scope(company_id, all_companies)
        algorithm = _check_oriented(check_algorithm(algorithm), orientations)
        k = _check_distance("k", k, upper=None)
        h = hash_of(image_or_hash, algorithm)
        statement = "SELECT * FROM ahash_nearest(%s, %s, %s, %s::ahash_algorithm)"
        if orientations:
            return self._oriented(h, lambda q: self.connection.execute(
                statement, (company, q, k, algorithm)).fetchall(), k)
        rows = self.connection.execute(
            statement, (company, to_signed(h), k, algorithm)).fetchall()
        return [_row_to_match(r) for r in rows]

    def _company_hashes(self, company_id: int, algorithm: str) -> tuple[Any, Any, Any]:
        """(ids, meta_ids, unsigned hashes) of one company's rows of one algorithm."""
        import numpy as np

        ids, metas, hashes = [], [], []
        with self.connection.cursor().copy(
            sql.SQL("COPY (SELECT id, meta_id, hash FROM image_hashes WHERE company_id = {}"
                    " AND algorithm = {}::ahash_algorithm) TO STDOUT (FORMAT BINARY)").format(
                sql.Literal(company_id), sql.Literal(algorithm))) as copy:
            copy.set_types(["int8", "int8", "int8"])
            for rid, meta, h in copy.rows():
                ids.append(rid)
                metas.append(meta)
                hashes.append(h)
        return (np.array(ids, dtype=np.int64), np.array(metas, dtype=np.int64),
                np.array(hashes, dtype=np.int64).view(np.uint64))

    def _sources(self, company_id: int, algorithm: str,
                 keys: list[tuple[int, int]]) -> dict[tuple, Any]:
        """source by (meta_id, signed hash), looked up through the primary key."""
        rows = self.connection.execute(
            "SELECT h.meta_id, h.hash, h.source FROM unnest(%s::bigint[], %s::bigint[])"
            " AS u(meta_id, hash) JOIN image_hashes h ON h.company_id = %s"
            " AND h.meta_id = u.meta_id AND h.algorithm = %s::ahash_algorithm"
            " AND h.hash = u.hash",
            ([k[0] for k in keys], [k[1] for k in keys], company_id, algorithm)).fetchall()
        return {(r[0], r[1]): r[2] for r in rows}

    def duplicates(
        self, *, company_id: int, max_distance: int = 4, algorithm: str = "ahash"
    ) -> Iterator[list[Match]]:
        """Groups of one company's stored ``algorithm`` hashes connected by distance
        <= ``max_distance``
        (connected components: a~b and b~c put a, b, c in one group even if a, c are
        farther apart), largest group first, then by smallest id; each group's members
        ordered by id, each a :class:`Match` whose ``distance`` is to the group's first
        member. Exact."""
        import numpy as np

        from .duplicates import components, groups, pairs_within

        company_id = _check_id("company_id", company_id)
        max_distance = _check_distance("max_distance", max_distance)
        algorithm = check_algorithm(algorithm)
        ids, metas, hashes = self._company_hashes(company_id, algorithm)
        signed = hashes.view(np.int64)
        values, inverse = np.unique(hashes, return_inverse=True)
        a, b = pairs_within(values, max_distance)
        component = components(len(values), a, b)[inverse]  # per row
        # Name each component by its smallest row id: groups of one size come in id order.
        smallest = np.full(len(values), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(smallest, component, ids)
        labels = smallest[component]
        pending: list[np.ndarray] = []

        def flush() -> Iterator[list[Match]]:
            keys = [(int(metas[r]), int(signed[r])) for g in pending for r in g]
            sources = self._sources(company_id, algorithm, keys)
            for g in pending:
                rows = g[np.argsort(ids[g], kind="stable")]
                first = int(hashes[rows[0]])
                yield [Match(int(ids[r]), company_id, int(metas[r]), to_hex(int(hashes[r])),
                             (int(hashes[r]) ^ first).bit_count(),
                             sources.get((int(metas[r]), int(signed[r]))))
                       for r in rows]
            pending.clear()

        for rows in groups(labels):
            pending.append(rows)
            if sum(len(g) for g in pending) >= 10_000:
                yield from flush()
        yield from flush()

    def duplicate_pairs(
        self, *, company_id: int, max_distance: int = 4, algorithm: str = "ahash"
    ) -> Iterator[tuple[int, int, int]]:
        """Every pair ``(id_a, id_b, distance)`` (id_a < id_b) of one company's
        ``algorithm`` rows within ``max_distance`` bits, ordered by distance. Exact."""
        import numpy as np

        from .duplicates import pairs_within

        company_id = _check_id("company_id", company_id)
        max_distance = _check_distance("max_distance", max_distance)
        ids, _, hashes = self._company_hashes(company_id, check_algorithm(algorithm))
        values, inverse = np.unique(hashes, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        starts = np.searchsorted(inverse[order], np.arange(len(values)))
        ends = np.searchsorted(inverse[order], np.arange(len(values)), side="right")
        a, b = pairs_within(values, max_distance)
        dist = np.bitwise_count(values[a] ^ values[b]) if len(a) else np.empty(0, np.uint8)
        out: list[tuple[int, int, int]] = []
        for v in np.flatnonzero(ends - starts > 1):  # identical hashes: distance 0
            rows = sorted(ids[order[starts[v]:ends[v]]].tolist())
            out.extend((x, y, 0) for k, x in enumerate(rows) for y in rows[k + 1:])
        out.sort()
        yield from out
        for k in np.argsort(dist, kind="stable"):
            rows_a = ids[order[starts[a[k]]:ends[a[k]]]].tolist()
            rows_b = ids[order[starts[b[k]]:ends[b[k]]]].tolist()
            d = int(dist[k])
            yield from sorted((min(x, y), max(x, y), d) for x in rows_a for y in rows_b)

    def hashes_of(
        self, *, company_id: int, meta_id: int, algorithm: str = "ahash"
    ) -> list[tuple[int, str]]:
        """``(id, hex)`` of every ``algorithm`` hash stored for one object."""
        rows = self.connection.execute(
            "SELECT id, hash FROM image_hashes WHERE company_id = %s AND meta_id = %s"
            " AND algorithm = %s::ahash_algorithm ORDER BY id",
            (_check_id("company_id", company_id), _check_id("meta_id", meta_id),
             check_algorithm(algorithm)),
        ).fetchall()
        return [(r[0], to_hex(r[1])) for r in rows]

    def stats(self, company_id: int | None = None) -> dict[str, Any]:
        """Rows per company, sizes, degenerate hashes, server version and schema revision."""
        conn = self.connection
        where, params = ("WHERE company_id = %s", (_check_id("company_id", company_id),)) \
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
            f" count(*) FROM (SELECT algorithm, hasher FROM image_hashes {where}) AS h"
            " LEFT JOIN ahash_hashers k ON k.id = h.hasher"
            " GROUP BY h.algorithm, 2, 3, 4 ORDER BY h.algorithm, 3 NULLS FIRST, 4 NULLS FIRST",
            params).fetchall()
        by_algorithm: dict[str, int] = {}
        for algorithm, *_, n in made_by:
            by_algorithm[algorithm] = by_algorithm.get(algorithm, 0) + n
        total = sum(n for _, n in per_company)
        return {
            "database": redact(self.url),
            "embedded": self._embedded,
            "data_directory": str(embedded.pgdata_dir()) if self._embedded else None,
            "server_version": version[0] if version else None,
            "schema_revision": self._read_revision(conn),
            "rows": total,
            "companies": {c: n for c, n in per_company},
            "algorithms": by_algorithm,
            "hashed_by": [
                {"algorithm": a, "hash_size": size, "imagehash": ih, "pillow": pil, "rows": n}
                for a, size, ih, pil, n in made_by
            ],
            "all_zero_hashes": degenerate[0] if degenerate else 0,
            "all_one_hashes": degenerate[1] if degenerate else 0,
            "low_information_hashes": degenerate[2] if degenerate else 0,
            "partitions": self.partitions(),
            "table_bytes": int(sizes[0] or 0) if sizes else 0,
            "index_bytes": int(sizes[1] or 0) if sizes else 0,
            "indexes": {name: size for name, size in indexes},
        }


def _lost_connection(exc: psycopg.Error) -> bool:
    """True for failures to reach or stay connected to the server (no SQLSTATE: libpq's own;
    class 08: connection exception; 57P: the server shutting down)."""
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


# --- row handling ---------------------------------------------------------------------------

#: A row as written: (company_id, meta_id, algorithm, signed hash, source, hasher id).
Row = tuple[int, int, str, int, "str | None", "int | None"]


def _check_oriented(algorithm: str, orientations: bool) -> str:
    if orientations and algorithm != "ahash":
        raise InvalidInput(
            f"orientations work with ahash only: a flip or rotation permutes aHash's 8x8 grid"
            f" of bits, but not {algorithm}'s")
    return algorithm


def _check_source(source: object) -> str | None:
    if source is None:
        return None
    if not isinstance(source, str):
        source = os.fsdecode(source) if isinstance(source, (bytes, os.PathLike)) else str(source)
    if "\x00" in source:
        raise InvalidInput(f"source {source[:60]!r}: contains a NUL byte")
    return source


def _normalize_rows(
    rows: Iterable[Sequence[Any] | Mapping[str, Any]],
    algorithm: str,
    hasher: Callable[[], int],
    hashed_here: bool,
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
                _check_id("company_id", company),
                _check_id("meta_id", meta),
                algorithm,
                to_signed(hash_of(value, algorithm)),
                _check_source(source),
                hasher() if image else own,
            )
        except KeyError as exc:
            raise InvalidInput(f"row {n}: missing field {exc.args[0]!r}") from None
        except AhashdbError as exc:
            raise type(exc)(f"row {n}: {exc}") from None


def _key_order(row: Row) -> tuple[int, int, int, int]:
    return row[0], row[1], _ALGORITHM_ORDER[row[2]], row[3]


_ALGORITHM_ORDER = {name: i for i, name in enumerate(ALGORITHMS)}


def _insert_batch(conn: psycopg.Connection, batch: list[Row]) -> int:
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
    except psycopg.errors.UniqueViolation:
        pass
    with conn.transaction():
        _ensure_stage(conn)
        _copy(conn, "ahashdb_stage", batch)
        return _insert_staged(conn)


def _insert_staged(conn: psycopg.Connection) -> int:
    """Move the staged rows into image_hashes, in key order, skipping stored ones."""
    columns = ", ".join(_COLUMNS)
    cur = conn.execute(
        f"INSERT INTO image_hashes ({columns}) SELECT {columns} FROM ahashdb_stage"
        " ORDER BY company_id, meta_id, algorithm, hash"
        " ON CONFLICT (company_id, meta_id, algorithm, hash) DO NOTHING"
    )
    conn.execute("TRUNCATE ahashdb_stage")
    return max(cur.rowcount, 0)


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
        f"COPY image_hashes ({', '.join(_COLUMNS)}) FROM STDIN"
        f" (FORMAT BINARY{'' if partitioned else ', FREEZE'})"
    )
    with conn.cursor().copy(statement) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
            seen += 1
    try:
        with conn.transaction():
            conn.execute(_INDEX_DDL["image_hashes_pkey"])
            return seen, seen
    except psycopg.errors.UniqueViolation:
        pass
    cur = conn.execute(
        "DELETE FROM image_hashes a USING image_hashes b"
        " WHERE a.company_id = b.company_id AND a.meta_id = b.meta_id"
        " AND a.algorithm = b.algorithm AND a.hash = b.hash AND a.id > b.id"
    )
    conn.execute(_INDEX_DDL["image_hashes_pkey"])
    return seen - max(cur.rowcount, 0), seen


def _ensure_stage(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ahashdb_stage (company_id bigint, meta_id bigint,"
        " algorithm ahash_algorithm, hash bigint, source text, hasher smallint)"
    )


def _copy(conn: psycopg.Connection, table: str, batch: list[Row]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)))
    with conn.cursor().copy(statement) as copy:
        copy.set_types(_COPY_TYPES)
        for row in batch:
            copy.write_row(row)
