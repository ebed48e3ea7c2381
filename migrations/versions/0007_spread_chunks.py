"""Deal each chunk's 16 bits across the whole 8x8 grid instead of two whole rows.

Multi-index hashing probes each chunk's index for the values near the query's chunk, and
its cost is the index entries those probes visit. Chunks of two whole grid rows are nearly
constant on real images (a bright sky, a white background: 0x0000 and 0xffff and a few
edges), so a few values hold a large share of a company's rows and every query near them
visits them all. Chunk i now holds the cells (row r, column c) with (r + c) % 4 == i: two
of every row, one column further in each next row, so no two of its bits are side by side
or one above the other. The pigeonhole argument needs only that the four chunks split the
64 bits, so answers do not change; the candidates a query visits do. Measured on the search
benchmark's clustered data (5M rows, 10 companies, median per company-scoped query): T=10
31,774 -> 14,420 index entries, T=4 2,307 -> 999 (p95 42,750 -> 5,830).

The upgrade rewrites image_hashes once (the chunk columns are stored generated columns) and
rebuilds the four chunk indexes: about as long as a bulk load of the same rows, with the
table locked meanwhile. The chunk indexes are built with fillfactor 80: new rows now land
all over them, and leaf pages left 20% free take them without splitting (measured, 1M rows
+20% inserted: 298 bytes/row of indexes afterwards, against 386 at the default 90).
``ahash_chunks(bigint)`` gives a value's four chunks, for the search functions and for
people reading the indexes by hand.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from typing import Any

from alembic import op

from ahashdb.migrating import earlier_migration

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHUNKS = 4

# Chunk i = OR of (hash >> shift) & mask over its terms; a negative shift shifts left.
# (Frozen here; ahashdb.schema.CHUNK_TERMS mirrors it and a test checks the two agree.)
CHUNK_TERMS = (
    ((-9, 34816), (6, 17544), (25, 8772), (40, 4386), (59, 17)),
    ((-2, 17544), (17, 8772), (32, 4386), (40, 34816), (58, 17)),
    ((-11, 34816), (8, 17544), (23, 8772), (42, 4386), (57, 17)),
    ((0, 17544), (15, 8772), (24, 34816), (41, 4386), (56, 17)),
)


def chunk_sql(i: int, value: str = "hash") -> str:
    """SQL for chunk i of the BIGINT expression ``value``."""
    terms = []
    for shift, mask in CHUNK_TERMS[i]:
        moved = value if shift == 0 else (
            f"({value} >> {shift})" if shift > 0 else f"({value} << {-shift})")
        terms.append(f"({moved} & {mask})")
    return f"({' | '.join(terms)})::integer"


AHASH_CHUNKS = f"""
CREATE FUNCTION ahash_chunks(value bigint) RETURNS integer[]
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN ARRAY[{', '.join(chunk_sql(i, 'value') for i in range(CHUNKS))}]
"""


# Revision 0005 builds ahash_search_index around the candidate SELECTs it is given.
_REVISION_0005 = earlier_migration(__file__, "0005_hash_algorithms.py")
ALG = "ahash_search_index.algorithm"
DISTANCE = "bit_count((x.hash # query)::bit(64))"


def _search_index_query(scoped: bool, weights: str, algorithm: str) -> str:
    """ahash_search_index's query: company-scoped, or across all companies; ``weights`` is
    the condition on the masks' weight, with ``{i}`` for the chunk's number (1-4), and
    ``algorithm`` the condition that keeps the rows of the asked algorithm."""
    scope = f"{algorithm} AND " + ("x.company_id = company AND " if scoped else "")
    parts = [
        f"SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x\n"
        f"         WHERE x.c{i} = ANY(ARRAY(SELECT chunks[{i + 1}] # m.mask"
        f" FROM ahash_chunk_masks m\n"
        f"                                   WHERE m.weight {weights.format(i=i + 1)}))\n"
        f"           AND {scope}{DISTANCE} <= max_distance"
        for i in range(CHUNKS)
    ]
    return _REVISION_0005.search_index_query(parts, scoped)


# Each chunk's probes are one index scan (= ANY): the B-tree sorts them and reads values
# that share a leaf page in one visit, which spread chunks often do (measured, 1M rows:
# T=4 0.51 -> 0.34 ms, T=10 4.7 -> 4.1 ms of execution against a join with one descent per
# probe). The probe values are made inside the query, not by separate statements.
def search_index_sql(weights: str = "<= radii[{i}]",
                     algorithm: str = f"x.algorithm = {ALG}") -> str:
    """ahash_search_index's definition, its probes the masks whose weight meets ``weights``
    and its rows those meeting ``algorithm`` (see :func:`_search_index_query`)."""
    return f"""
CREATE OR REPLACE FUNCTION ahash_search_index(company bigint, query bigint,
                                              max_distance integer, max_rows integer,
                                              algorithm ahash_algorithm)
  RETURNS TABLE (id bigint, company_id bigint, meta_id bigint, hash bigint,
                 distance integer, source text)
  LANGUAGE plpgsql STABLE PARALLEL SAFE
  SET plan_cache_mode = force_generic_plan
  SET enable_hashjoin = off
  SET enable_mergejoin = off
  SET enable_bitmapscan = off
AS $fn$
#variable_conflict use_column
DECLARE
  radii integer[] := ahash_chunk_radii(max_distance);
  chunks integer[] := ahash_chunks(query);
BEGIN
  IF company IS NULL THEN
{_search_index_query(False, weights, algorithm)}
  ELSE
{_search_index_query(True, weights, algorithm)}
  END IF;
END
$fn$
"""


AHASH_SEARCH_INDEX = search_index_sql()


def _chunk_columns(expression: Any, fillfactor: int | None) -> None:
    """Replace c0..c3 (and with them their indexes) by columns generated as given."""
    storage = f" WITH (fillfactor = {fillfactor})" if fillfactor else ""
    drop = ", ".join(f"DROP COLUMN c{i}" for i in range(CHUNKS))
    add = ", ".join(f"ADD COLUMN c{i} integer GENERATED ALWAYS AS ({expression(i)}) STORED"
                    " NOT NULL" for i in range(CHUNKS))
    op.execute(f"ALTER TABLE image_hashes {drop}, {add}")
    for i in range(CHUNKS):
        op.execute(f"CREATE INDEX image_hashes_c{i}_idx ON image_hashes"
                   f" (c{i}, algorithm, company_id) INCLUDE (hash, meta_id){storage}")


def _or_replace(statement: str) -> str:
    return statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    _chunk_columns(chunk_sql, fillfactor=80)
    op.execute(AHASH_CHUNKS)
    op.execute(AHASH_SEARCH_INDEX)
    op.execute(earlier_migration(__file__, "0006_cheap_search_plan.py").nearest_sql(
        "ahash_chunks(query)", any_array=True))
    op.execute("ANALYZE image_hashes")


def downgrade() -> None:
    old = earlier_migration(__file__, "0003_multi_index_hashing.py")
    _chunk_columns(old.chunk_expression, fillfactor=None)
    op.execute(_or_replace(_REVISION_0005.AHASH_SEARCH_INDEX))
    op.execute(earlier_migration(__file__, "0006_cheap_search_plan.py").AHASH_NEAREST)
    op.execute("DROP FUNCTION ahash_chunks(bigint)")
    op.execute("ANALYZE image_hashes")
