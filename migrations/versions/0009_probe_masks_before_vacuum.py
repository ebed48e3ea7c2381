"""ahash_search_index reads its probe masks by index on a database not yet vacuumed.

Its probes are ``ahash_chunk_masks WHERE weight <= radii[i]``. In a generic plan the
planner guesses a third of the table's 65,536 rows for ``<=`` a parameter; once the table
has been vacuumed an index-only scan of that guess still wins, but until then (a freshly
migrated database, for the minute or so before autovacuum gets to the table, or for good
where autovacuum is off) every page would need a heap visit, so it scans the whole table
instead, once per chunk: measured, 3,000 rows just loaded, ahash_search at T=0 took 28-32 ms
against 0.4 ms a minute later. ``BETWEEN 0 AND radii[i]`` selects the same masks (weights
are never negative), and a range with parameters is guessed small, so the primary key's
index serves it either way (0004 made the same change to ahash_probes, for the case of no
statistics at all).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from ahashdb.migrating import earlier_migration

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


AHASH_SEARCH_INDEX = """
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
    RETURN QUERY
      WITH cand AS (
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c0 = ANY(ARRAY(SELECT chunks[1] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[1]))
           AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ARRAY(SELECT chunks[2] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[2]))
           AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ARRAY(SELECT chunks[3] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[3]))
           AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ARRAY(SELECT chunks[4] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[4]))
           AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance),
      -- With a row limit, only rows up to the limit's distance need their heap rows.
      cut AS (
        SELECT bit_count((cand.xh # query)::bit(64)) AS d FROM cand
         ORDER BY 1 OFFSET greatest(max_rows - 1, 0) LIMIT 1)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM cand JOIN image_hashes h
          ON h.company_id = cand.cid AND h.meta_id = cand.mid AND h.algorithm = ahash_search_index.algorithm
         AND h.hash = cand.xh
       WHERE max_rows IS NULL
          OR bit_count((cand.xh # query)::bit(64)) <= coalesce((SELECT cut.d FROM cut), 64)
       ORDER BY 5, 1
       LIMIT max_rows;
  ELSE
    RETURN QUERY
      WITH cand AS (
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c0 = ANY(ARRAY(SELECT chunks[1] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[1]))
           AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ARRAY(SELECT chunks[2] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[2]))
           AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ARRAY(SELECT chunks[3] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[3]))
           AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ARRAY(SELECT chunks[4] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[4]))
           AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance),
      -- With a row limit, only rows up to the limit's distance need their heap rows.
      cut AS (
        SELECT bit_count((cand.xh # query)::bit(64)) AS d FROM cand
         ORDER BY 1 OFFSET greatest(max_rows - 1, 0) LIMIT 1)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM cand JOIN image_hashes h
          ON h.company_id = company AND h.meta_id = cand.mid AND h.algorithm = ahash_search_index.algorithm
         AND h.hash = cand.xh
       WHERE max_rows IS NULL
          OR bit_count((cand.xh # query)::bit(64)) <= coalesce((SELECT cut.d FROM cut), 64)
       ORDER BY 5, 1
       LIMIT max_rows;
  END IF;
END
$fn$
"""


def upgrade() -> None:
    for statement in (
        AHASH_SEARCH_INDEX,
    ):
        op.execute(statement)


def downgrade() -> None:
    r0007 = earlier_migration(__file__, "0007_spread_chunks.py")
    for statement in (
        r0007.AHASH_SEARCH_INDEX,
    ):
        op.execute(statement)
