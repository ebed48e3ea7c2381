"""The chunk indexes key on a smallint algorithm code, so row-level security narrows them.

Under row-level security PostgreSQL lets a condition narrow an index scan only if its
operator is leakproof (it cannot reveal, by an error or a side effect, the values of rows
the policy hides). Integer equality is; equality of an enum is not. So for a role kept
inside its company by ``ahashdb rls enable``, ``x.algorithm = 'ahash'`` was no longer an
index condition on the chunk indexes (c_i, algorithm, company_id): PostgreSQL 18 skipped
over the algorithm column value by value, and PostgreSQL 14-17, which cannot skip, read the
entries of every company under each probe value and checked company_id one by one, work
that grows with the whole table rather than with the company. Measured with
``benchmarks/rls.py`` at 5M rows in 10 companies, the role's searches were 1.2-1.8x
slower than the owner's (top-10: 7.6 vs 4.5 ms on 18, 10.1 vs 5.7 ms on 15).

``algorithm_code`` is a stored generated smallint, ``ahash_algorithm_code(algorithm)``
(0 ahash, 1 phash, 2 dhash, 3 whash), and it replaces ``algorithm`` in the chunk indexes:
(c_i, algorithm_code, company_id) INCLUDE (hash, meta_id). A smallint and its padding take
the four bytes the enum took, so the indexes keep their size. ahash_search_index and
ahash_nearest compare ``x.algorithm_code = ahash_algorithm_code(algorithm)``.

Adding a stored column rewrites image_hashes once and rebuilds its indexes (the chunk
indexes are dropped first and built once, after the rewrite), with the table locked
meanwhile, as 0007 did.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from ahashdb.migrating import earlier_migration

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The enum's labels at this revision, in order; an algorithm added later needs its code here.
LABELS = ("ahash", "phash", "dhash", "whash")
CHUNKS = 4

AHASH_ALGORITHM_CODE = f"""
CREATE FUNCTION ahash_algorithm_code(algorithm ahash_algorithm) RETURNS smallint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE algorithm {' '.join(f"WHEN '{a}' THEN {i}" for i, a in enumerate(LABELS))} END
"""


_REVISION_0006 = earlier_migration(__file__, "0006_cheap_search_plan.py")
_REVISION_0007 = earlier_migration(__file__, "0007_spread_chunks.py")
_REVISION_0008 = earlier_migration(__file__, "0008_nearest_counts_as_it_goes.py")
_REVISION_0009 = earlier_migration(__file__, "0009_probe_masks_before_vacuum.py")

AHASH_SEARCH_INDEX = _REVISION_0007.search_index_sql(
    "BETWEEN 0 AND radii[{i}]",
    algorithm=f"x.algorithm_code = ahash_algorithm_code({_REVISION_0007.ALG})")
AHASH_NEAREST = _REVISION_0008.nearest_sql(
    algorithm=f"x.algorithm_code = ahash_algorithm_code({_REVISION_0006.ALG})")


def _chunk_indexes(key: str) -> None:
    for i in range(CHUNKS):
        op.execute(f"CREATE INDEX image_hashes_c{i}_idx ON image_hashes (c{i}, {key})"
                   " INCLUDE (hash, meta_id) WITH (fillfactor = 80)")


def _drop_chunk_indexes() -> None:
    for i in range(CHUNKS):
        op.execute(f"DROP INDEX image_hashes_c{i}_idx")


def upgrade() -> None:
    op.execute(AHASH_ALGORITHM_CODE)
    _drop_chunk_indexes()
    op.execute("ALTER TABLE image_hashes ADD COLUMN algorithm_code smallint"
               " GENERATED ALWAYS AS (ahash_algorithm_code(algorithm)) STORED NOT NULL")
    _chunk_indexes("algorithm_code, company_id")
    op.execute(AHASH_SEARCH_INDEX)
    op.execute(AHASH_NEAREST)
    op.execute("ANALYZE image_hashes")


def downgrade() -> None:
    _drop_chunk_indexes()
    op.execute("ALTER TABLE image_hashes DROP COLUMN algorithm_code")
    _chunk_indexes("algorithm, company_id")
    op.execute(_REVISION_0009.AHASH_SEARCH_INDEX)
    op.execute(_REVISION_0008.nearest_sql())
    op.execute("DROP FUNCTION ahash_algorithm_code(ahash_algorithm)")
    op.execute("ANALYZE image_hashes")
