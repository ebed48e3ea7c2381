"""HashStore: the Python API over an ahashdb database, and its one public face.

Each method checks its arguments and makes one call into the module that does the job:
:mod:`ahashdb.connection` (connecting, migrations), :mod:`ahashdb.loading` (writing rows),
:mod:`ahashdb.search` (exact searches), :mod:`ahashdb.duplicates` (near-duplicate groups)
and :mod:`ahashdb.admin` (partitions, row-level security, stats). The CLI is a thin layer
over these methods, and SQL users call the same functions (``ahash_search``,
``ahash_nearest``) from psql.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg

from . import citus, connection, loading
from . import search as searching
from .checks import check_distance, check_id, check_oriented, check_source
from .config import database_source, database_url, describe_target, redact
from .connection import SCHEMA_REVISION, migrations_path
from .errors import InvalidInput, SchemaNotMigrated
from .hashes import (
    DEFAULT_MAX_DISTANCE,
    HASH_SIZE,
    HashLike,
    ImageLike,
    check_algorithm,
    hash_of,
    hasher_versions,
    is_hash_spelling,
    to_hex,
    to_signed,
)
from .layout import LayoutMethods
from .search import InsertResult, Match
from .tenancy import TenancyMethods

__all__ = ["HashStore", "InsertResult", "Match", "SCHEMA_REVISION", "database_url",
           "migrations_path"]


#: A load without options larger than this, into an empty table, is loaded in bulk.
AUTO_BULK_ROWS = 100_000


def _raising(exc: BaseException) -> Iterator[Any]:
    """An iterator that raises ``exc`` where it is reached."""
    raise exc
    yield  # (unreached: it makes this a generator)


class HashStore(LayoutMethods, TenancyMethods):
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
        chosen, self.database_source = database_source(url)
        self._embedded = chosen is None
        self.url = database_url(url)
        self.auto_migrate = self._embedded if auto_migrate is None else auto_migrate
        if statement_timeout is not None and statement_timeout < 0:
            raise InvalidInput(f"statement_timeout {statement_timeout}: expected 0 or more")
        self.statement_timeout = statement_timeout
        self.tenant = None if tenant is None else check_id("tenant", tenant)
        self._conn: psycopg.Connection | None = None
        self._schema_checked = False
        self._hashers: dict[tuple[str, str], int] = {}
        self._borrowed = False

    @classmethod
    def over(cls, conn: psycopg.Connection, url: str) -> HashStore:
        """A store that works over ``conn`` (a pooled connection, say, autocommit, at the
        current schema), which it borrows: :meth:`close` leaves it open."""
        store = cls(url, auto_migrate=False)
        store._conn = conn
        store._schema_checked = True
        store._borrowed = True
        return store

    # --- connection -----------------------------------------------------------------------

    def __enter__(self) -> HashStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the store reconnects if used again); a borrowed one (see
        :meth:`over`) is only let go."""
        if self._conn is not None and not self._borrowed:
            self._conn.close()
        self._conn = None
        self._borrowed = False

    def __repr__(self) -> str:
        return f"HashStore({redact(self.url)!r})"

    @property
    def is_embedded(self) -> bool:
        """True when this store uses the embedded server."""
        return self._embedded

    def _connect(self) -> psycopg.Connection:
        return connection.connect(self.url, statement_timeout=self.statement_timeout,
                                  tenant=self.tenant)

    @property
    def connection(self) -> psycopg.Connection:
        """The psycopg connection (autocommit; batches use explicit transactions)."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        if not self._schema_checked:
            self._check_schema(self._conn)
        return self._conn

    def _raw_connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def schema_revision(self) -> str | None:
        """The database's Alembic revision, or None when it has no ahashdb schema."""
        return connection.read_revision(self._raw_connection())

    def _check_schema(self, conn: psycopg.Connection) -> None:
        revision = connection.read_revision(conn)
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
        return connection.alembic_config(self.url)

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (default: the newest); safe to run concurrently.
        On a Citus-distributed database, what the new revisions made is distributed too."""
        connection.run_alembic(self.url, "upgrade", revision)
        self._schema_checked = revision in ("head", SCHEMA_REVISION)
        if citus.is_distributed(conn := self._raw_connection()):
            citus.enable(conn)

    def downgrade(self, revision: str) -> None:
        """Downgrade the schema to ``revision`` (``"base"`` drops everything ahashdb made)."""
        connection.run_alembic(self.url, "downgrade", revision)
        self._schema_checked = False

    # --- writing --------------------------------------------------------------------------

    def insert(
        self,
        image_or_hash: ImageLike | HashLike,
        *,
        company_id: int,
        meta_id: int,
        source: str | None = None,
        algorithm: str = "ahash",
        fast: bool = False,
    ) -> int | None:
        """Store one hash; returns the new row's id, or None when it was already stored.

        An image is hashed by ``algorithm`` (ahash, phash, dhash or whash; ``fast``:
        reduced-scale JPEG decoding, see :func:`ahashdb.hash_image`) and the row records
        this process's imagehash and Pillow versions and the decoding; a hash value is
        stored as that algorithm's hash, with no versions recorded."""
        company_id = check_id("company_id", company_id)
        meta_id = check_id("meta_id", meta_id)
        algorithm = check_algorithm(algorithm)
        hashed_here = not is_hash_spelling(image_or_hash)
        h = to_signed(hash_of(image_or_hash, algorithm, fast))
        row = self.connection.execute(
            "INSERT INTO image_hashes (company_id, meta_id, algorithm, hash, source, hasher)"
            " VALUES (%s, %s, %s::ahash_algorithm, %s, %s, %s)"
            " ON CONFLICT (company_id, meta_id, algorithm, hash) DO NOTHING RETURNING id",
            (company_id, meta_id, algorithm, h, check_source(source),
             self.hasher_id(algorithm, fast) if hashed_here else None),
        ).fetchone()
        return None if row is None else row[0]

    def insert_if_new(
        self,
        image_or_hash: ImageLike | HashLike,
        *,
        company_id: int,
        meta_id: int,
        max_distance: int | None = None,
        source: str | None = None,
        algorithm: str = "ahash",
        hashed_here: bool | None = None,
        fast: bool = False,
    ) -> InsertResult:
        """Store the hash only if the company holds nothing within ``max_distance`` bits
        of it (default: the algorithm's); atomic (``ahash_insert_if_new``): of several
        near-identical calls at the same moment exactly one stores, and the others get that
        row among their ``matches``. Returns what was stored, or what prevented it.
        ``hashed_here`` (default: whether an image was given) records this process's
        imagehash and Pillow versions on the row."""
        company_id = check_id("company_id", company_id)
        meta_id = check_id("meta_id", meta_id)
        algorithm = check_algorithm(algorithm)
        if max_distance is None:
            max_distance = DEFAULT_MAX_DISTANCE[algorithm]
        max_distance = check_distance("max_distance", max_distance)
        if hashed_here is None:
            hashed_here = not is_hash_spelling(image_or_hash)
        h = hash_of(image_or_hash, algorithm, fast)
        return searching.insert_if_new(
            self.connection, company_id, h, max_distance, meta_id, check_source(source),
            algorithm, self.hasher_id(algorithm, fast) if hashed_here else None)

    def hasher_id(self, algorithm: str = "ahash", fast: bool = False) -> int:
        """The ``ahash_hashers`` id of ``algorithm`` at this process's imagehash and Pillow
        versions, decoded fully or (``fast``) at reduced scale, recorded on first use: what
        rows hashed here carry in ``hasher``."""
        algorithm = check_algorithm(algorithm)
        decode = "reduced" if fast else "full"
        if (algorithm, decode) not in self._hashers:
            imagehash_version, pillow_version = hasher_versions()
            key = (algorithm, HASH_SIZE, imagehash_version, pillow_version, decode)
            conn = self.connection
            row = conn.execute(
                "INSERT INTO ahash_hashers (algorithm, hash_size, imagehash_version,"
                " pillow_version, decode) VALUES (%s::ahash_algorithm, %s, %s, %s, %s)"
                " ON CONFLICT (algorithm, hash_size, imagehash_version, pillow_version, decode)"
                " DO NOTHING RETURNING id", key).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT id FROM ahash_hashers WHERE algorithm = %s::ahash_algorithm"
                    " AND hash_size = %s AND imagehash_version = %s AND pillow_version = %s"
                    " AND decode = %s", key).fetchone()
            assert row is not None
            self._hashers[(algorithm, decode)] = int(row[0])
        return self._hashers[(algorithm, decode)]

    def insert_many(
        self,
        rows: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        batch_size: int = 50_000,
        bulk: bool | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        algorithm: str = "ahash",
        hashed_here: bool = False,
        writers: int | None = None,
        fast: bool = False,
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
        small table, with indexes a fifth smaller, and all-or-nothing. It locks the table
        meanwhile (readers and writers wait). By default (``bulk=None``) a load of more than
        100,000 rows into an empty table takes that path by itself when this role owns the
        table, on one server; otherwise, and with ``bulk=False``, rows go in batches.
        ``writers=N`` (batches) writes N batches at once over N connections:
        maintaining the search indexes is most of a row's cost, and it is the server's
        CPU that does it (two writers: about 1.5-2x on two cores). By default the count
        follows the machine and the load: one writer for a single batch, else one per
        core, at most 4. ``on_batch(added, seen)``
        is called after each committed batch.
        """
        if batch_size < 1:
            raise InvalidInput(f"batch_size {batch_size}: expected 1 or more")
        if writers is not None and (isinstance(writers, bool) or not isinstance(writers, int)
                                    or not 1 <= writers <= 64):
            raise InvalidInput(f"writers {writers!r}: expected 1 to 64")
        algorithm = check_algorithm(algorithm)
        normalized = loading.normalize_rows(rows, algorithm,
                                            lambda: self.hasher_id(algorithm, fast), hashed_here,
                                            fast)
        if bulk is None:
            head: list[loading.Row] = []
            try:
                head.extend(itertools.islice(normalized, AUTO_BULK_ROWS + 1))
            except Exception as exc:  # a bad row: the batches before it are still stored
                normalized, bulk = itertools.chain(head, _raising(exc)), False
            else:
                normalized = itertools.chain(head, normalized)
                bulk = len(head) > AUTO_BULK_ROWS and loading.bulk_fits(self.connection)
        if bulk:
            return loading.bulk_load(self.connection, normalized, on_batch)
        batches: Iterator[list[loading.Row]] = iter(
            lambda: list(itertools.islice(normalized, batch_size)), [])
        if writers is None:
            head = list(itertools.islice(batches, 2))
            writers = min(4, os.cpu_count() or 1) if len(head) > 1 else 1
            batches = itertools.chain(head, batches)
        if writers > 1:
            return loading.insert_parallel(self.connection, self._connect, batches, writers,
                                           on_batch)
        added = 0
        for batch in batches:
            added_now = loading.insert_batch(self.connection, batch)
            added += added_now
            if on_batch is not None:
                on_batch(added_now, len(batch))
        return added

    def source_markers(self, company_id: int, algorithm: str = "ahash") -> dict[str, str]:
        """source -> change marker of every input one company ingested (re-runs skip an
        input whose source was stored with the same marker)."""
        return loading.source_markers(self.connection, check_id("company_id", company_id),
                                      check_algorithm(algorithm))

    def record_sources(self, entries: list[tuple[int, str, str, int, int]],
                       algorithm: str = "ahash") -> int:
        """Record ``(company_id, source, marker, meta_id, signed hash)`` of inputs just
        stored and delete rows of their earlier versions; returns how many went."""
        return loading.record_sources(self.connection, check_algorithm(algorithm), entries)

    def delete(
        self,
        *,
        company_id: int,
        meta_id: int | None = None,
        ids: Iterable[int] | None = None,
        everything: bool = False,
    ) -> int:
        """Delete one company's rows by ``meta_id`` (its hashes of every algorithm), by row
        ``ids``, or all of them (``everything=True``, with its review decisions); returns
        how many rows went."""
        company_id = check_id("company_id", company_id)
        if (meta_id is not None) + (ids is not None) + everything != 1:
            raise InvalidInput("delete needs exactly one of meta_id, ids or everything")
        if everything:
            with self.connection.transaction():
                self.connection.execute("DELETE FROM ahash_decisions WHERE company_id = %s",
                                        (company_id,))
                cur = self.connection.execute(
                    "DELETE FROM image_hashes WHERE company_id = %s", (company_id,))
            return max(cur.rowcount, 0)
        if meta_id is not None:
            cur = self.connection.execute(
                "DELETE FROM image_hashes WHERE company_id = %s AND meta_id = %s",
                (company_id, check_id("meta_id", meta_id)),
            )
        else:
            cur = self.connection.execute(
                "DELETE FROM image_hashes WHERE company_id = %s AND id = ANY(%s)",
                (company_id, [check_id("id", i) for i in ids or ()]),
            )
        return max(cur.rowcount, 0)

    # --- reading --------------------------------------------------------------------------

    def count(self, company_id: int | None = None, *, algorithm: str | None = None) -> int:
        """How many hashes are stored: for one company, or all when ``company_id`` is None;
        of one ``algorithm``, or of all when it is None."""
        where, params = ["true"], []
        if company_id is not None:
            where.append("company_id = %s")
            params.append(check_id("company_id", company_id))
        if algorithm is not None:
            where.append("algorithm = %s::ahash_algorithm")
            params.append(check_algorithm(algorithm))
        row = self.connection.execute(
            f"SELECT count(*) FROM image_hashes WHERE {' AND '.join(where)}", params
        ).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _scope(company_id: int | None, all_companies: bool) -> int | None:
        if all_companies:
            if company_id is not None:
                raise InvalidInput("give either company_id or all_companies=True, not both")
            return None
        if company_id is None:
            raise InvalidInput(
                "company_id is required (pass all_companies=True to search every company)"
            )
        return check_id("company_id", company_id)

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
        algorithm = check_oriented(check_algorithm(algorithm), orientations)
        if max_distance is None:
            max_distance = DEFAULT_MAX_DISTANCE[algorithm]
        max_distance = check_distance("max_distance", max_distance)
        if limit is not None:
            limit = check_distance("limit", limit, upper=None)
        return searching.search(self.connection, company, hash_of(image_or_hash, algorithm),
                                max_distance, limit, algorithm, orientations)

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
        algorithm = check_oriented(check_algorithm(algorithm), orientations)
        k = check_distance("k", k, upper=None)
        return searching.nearest(self.connection, company, hash_of(image_or_hash, algorithm),
                                 k, algorithm, orientations)

    def similar_to_meta_id(
        self,
        meta_id: int,
        *,
        company_id: int,
        max_distance: int | None = None,
        limit: int | None = None,
        k: int | None = None,
        all_companies: bool = False,
        orientations: bool = False,
        algorithm: str = "ahash",
    ) -> list[tuple[str, Match]]:
        """Look-alikes of a stored object: each of its ``algorithm`` hashes searched (within
        ``max_distance``, at most ``limit`` rows; or the ``k`` nearest when ``k`` is given),
        leaving out the object's own rows. ``(hash, match)`` pairs, per stored hash in id
        order, each hash's matches closest first. ``all_companies`` searches every company
        with the object's hashes from ``company_id``. InvalidInput when nothing is stored."""
        company_id = check_id("company_id", company_id)
        meta_id = check_id("meta_id", meta_id)
        stored = self.hashes_of(company_id=company_id, meta_id=meta_id, algorithm=algorithm)
        if not stored:
            raise InvalidInput(f"meta_id {meta_id}: no {algorithm} hash stored for company"
                               f" {company_id}")
        scope = {"company_id": None if all_companies else company_id,
                 "all_companies": all_companies, "orientations": orientations,
                 "algorithm": algorithm}
        out: list[tuple[str, Match]] = []
        for own_id, h in stored:
            # One row more than asked for: the object's own row may take a place.
            if k is not None:
                found = self.nearest(h, k=k + 1, **scope)
            else:
                found = self.search(h, max_distance=max_distance,
                                    limit=None if limit is None else limit + 1, **scope)
            found = [m for m in found if m.id != own_id]
            cut = k if k is not None else limit
            out += [(h, m) for m in (found if cut is None else found[:cut])]
        return out

    def duplicates(
        self, *, company_id: int, max_distance: int = 4, algorithm: str = "ahash"
    ) -> Iterator[list[Match]]:
        """Groups of one company's stored ``algorithm`` hashes connected by distance
        <= ``max_distance``
        (connected components: a~b and b~c put a, b, c in one group even if a, c are
        farther apart), largest group first, then by smallest id; each group's members
        ordered by id, each a :class:`Match` whose ``distance`` is to the group's first
        member. Exact."""
        from .duplicates import duplicate_groups

        return duplicate_groups(self.connection, check_id("company_id", company_id),
                                check_distance("max_distance", max_distance),
                                check_algorithm(algorithm))

    def duplicate_pairs(
        self, *, company_id: int, max_distance: int = 4, algorithm: str = "ahash"
    ) -> Iterator[tuple[int, int, int]]:
        """Every pair ``(id_a, id_b, distance)`` (id_a < id_b) of one company's
        ``algorithm`` rows within ``max_distance`` bits, ordered by distance. Exact."""
        from .duplicates import duplicate_pairs

        return duplicate_pairs(self.connection, check_id("company_id", company_id),
                               check_distance("max_distance", max_distance),
                               check_algorithm(algorithm))

    def mark_not_duplicates(self, *, company_id: int, ids: Iterable[int]) -> int:
        """Record that the rows ``ids`` of one company are not duplicates of each other:
        duplicate listings (:meth:`duplicates`, :meth:`duplicate_pairs`) leave those links
        out from then on. Returns how many pairs were newly recorded."""
        company_id = check_id("company_id", company_id)
        members = sorted({check_id("id", i) for i in ids})
        pairs = [(a, b) for k, a in enumerate(members) for b in members[k + 1:]]
        if not pairs:
            return 0
        cur = self.connection.execute(
            "INSERT INTO ahash_decisions (company_id, id_a, id_b, decision)"
            " SELECT %s, a, b, 'not_duplicates' FROM unnest(%s::bigint[], %s::bigint[])"
            " AS p(a, b) ON CONFLICT DO NOTHING",
            (company_id, [p[0] for p in pairs], [p[1] for p in pairs]))
        return max(cur.rowcount, 0)

    def keep_only(self, *, company_id: int, keep: int, ids: Iterable[int]) -> int:
        """Keep row ``keep`` and delete the company's other rows among ``ids`` (what a
        reviewer decides for a group of duplicates); returns how many were deleted."""
        keep = check_id("keep", keep)
        others = [i for i in ids if check_id("id", i) != keep]
        return self.delete(company_id=company_id, ids=others) if others else 0

    def export(self, *, company_id: int,
               algorithm: str = "ahash") -> Iterator[tuple[str, int, str | None]]:
        """Every ``algorithm`` row of one company as ``(hex, meta_id, source)``, in id
        order, streamed (what ``ahashdb export`` writes and ``ingest --hashes`` reads)."""
        from psycopg import sql

        statement = sql.SQL(
            "COPY (SELECT hash, meta_id, source FROM image_hashes WHERE company_id = {}"
            " AND algorithm = {}::ahash_algorithm ORDER BY id) TO STDOUT (FORMAT BINARY)"
        ).format(sql.Literal(check_id("company_id", company_id)),
                 sql.Literal(check_algorithm(algorithm)))
        with self.connection.cursor().copy(statement) as copy:
            copy.set_types(["int8", "int8", "text"])
            for h, meta, source in copy.rows():
                yield to_hex(h), meta, source

    def row(self, *, company_id: int, row_id: int) -> Match | None:
        """One stored row of the company by its id (``distance`` 0), or None."""
        r = self.connection.execute(
            "SELECT id, company_id, meta_id, hash, source FROM image_hashes"
            " WHERE company_id = %s AND id = %s",
            (check_id("company_id", company_id), check_id("id", row_id))).fetchone()
        return None if r is None else Match(r[0], r[1], r[2], to_hex(r[3]), 0, r[4])

    def hashes_of(
        self, *, company_id: int, meta_id: int, algorithm: str = "ahash"
    ) -> list[tuple[int, str]]:
        """``(id, hex)`` of every ``algorithm`` hash stored for one object."""
        rows = self.connection.execute(
            "SELECT id, hash FROM image_hashes WHERE company_id = %s AND meta_id = %s"
            " AND algorithm = %s::ahash_algorithm ORDER BY id",
            (check_id("company_id", company_id), check_id("meta_id", meta_id),
             check_algorithm(algorithm)),
        ).fetchall()
        return [(r[0], to_hex(r[1])) for r in rows]
