"""Reading rows: the exact searches (``ahash_search``, ``ahash_nearest``), searches under the
8 orientations, and one company's hashes for the duplicate finder."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from .hashes import to_hex, to_signed

__all__ = ["InsertResult", "Match", "company_hashes", "insert_if_new", "nearest", "oriented",
           "search", "sources"]

_SEARCH = "SELECT * FROM ahash_search(%s, %s, %s, %s, %s::ahash_algorithm)"
_NEAREST = "SELECT * FROM ahash_nearest(%s, %s, %s, %s::ahash_algorithm)"


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


def _match(row: Sequence[Any]) -> Match:
    return Match(row[0], row[1], row[2], to_hex(row[3]), row[4], row[5])


def search(conn: psycopg.Connection, company: int | None, h: int, max_distance: int,
           limit: int | None, algorithm: str, orientations: bool = False) -> list[Match]:
    """``ahash_search`` of unsigned hash ``h`` (``company`` None: every company)."""
    def run(q: int) -> list[Any]:
        return conn.execute(_SEARCH, (company, q, max_distance, limit, algorithm)).fetchall()

    if orientations:
        return oriented(h, run, limit)
    return [_match(r) for r in run(to_signed(h))]


def nearest(conn: psycopg.Connection, company: int | None, h: int, k: int, algorithm: str,
            orientations: bool = False) -> list[Match]:
    """``ahash_nearest`` of unsigned hash ``h``: the ``k`` closest rows."""
    def run(q: int) -> list[Any]:
        return conn.execute(_NEAREST, (company, q, k, algorithm)).fetchall()

    if orientations:
        return oriented(h, run, k)
    return [_match(r) for r in run(to_signed(h))]


def oriented(h: int, run: Callable[[int], list[Any]], cut: int | None) -> list[Match]:
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
            m = _match(row)
            if m.id not in best or m.distance < best[m.id].distance:
                best[m.id] = dataclasses.replace(m, orientation=name)
    ordered = sorted(best.values(), key=lambda m: (m.distance, m.id))
    return ordered if cut is None else ordered[:cut]


@dataclass(frozen=True, slots=True)
class InsertResult:
    """What :meth:`ahashdb.HashStore.insert_if_new` did: the row it stored, or the stored
    near-duplicates that kept it from storing one (closest first)."""

    stored: Match | None
    matches: list[Match]

    def as_dict(self) -> dict[str, Any]:
        """As plain JSON-ready data."""
        return {"stored": None if self.stored is None else self.stored.as_dict(),
                "matches": [m.as_dict() for m in self.matches]}


def insert_if_new(conn: psycopg.Connection, company: int, h: int, max_distance: int,
                  meta_id: int, source: str | None, algorithm: str,
                  hasher: int | None) -> InsertResult:
    """``ahash_insert_if_new`` of unsigned hash ``h``: one statement, so atomic on its own
    (its advisory locks last until the transaction it runs in ends)."""
    rows = conn.execute(
        "SELECT * FROM ahash_insert_if_new(%s, %s, %s, %s, %s, %s::ahash_algorithm, %s)",
        (company, to_signed(h), max_distance, meta_id, source, algorithm, hasher)).fetchall()
    if rows and rows[0][0]:
        return InsertResult(_match(rows[0][1:]), [])
    return InsertResult(None, [_match(r[1:]) for r in rows])


def company_hashes(conn: psycopg.Connection, company_id: int,
                   algorithm: str) -> tuple[Any, Any, Any]:
    """(ids, meta_ids, unsigned hashes) of one company's rows of one algorithm, as numpy
    arrays, streamed with binary COPY."""
    import numpy as np

    ids, metas, hashes = [], [], []
    with conn.cursor().copy(
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


def sources(conn: psycopg.Connection, company_id: int, algorithm: str,
            keys: list[tuple[int, int]]) -> dict[tuple[int, int], str | None]:
    """source by (meta_id, signed hash), looked up through the primary key."""
    rows = conn.execute(
        "SELECT h.meta_id, h.hash, h.source FROM unnest(%s::bigint[], %s::bigint[])"
        " AS u(meta_id, hash) JOIN image_hashes h ON h.company_id = %s"
        " AND h.meta_id = u.meta_id AND h.algorithm = %s::ahash_algorithm"
        " AND h.hash = u.hash",
        ([k[0] for k in keys], [k[1] for k in keys], company_id, algorithm)).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}
