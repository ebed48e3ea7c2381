"""Rows found by a search are fetched in key order.

After the chunk indexes have named the rows within T, ``ahash_search_index`` fetches each
one (its id and source) through the primary key, one descent per row. The candidates came
in hash-table order, so consecutive descents landed on unrelated index and heap pages;
sorted by (company_id, meta_id) first, neighbouring lookups share their pages. A search
with a large answer is mostly these fetches: at 1M rows, all companies at T=10, a query
finding 28,333 rows fetched them in 97-138 ms in hash order and 66-69 ms sorted; over 120
queries the p95 went from 72-75 ms to 57-59 ms (``python benchmarks/search.py`` measures
the schema as a whole). Same answers, same order.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

from ahashdb.migrating import earlier_migration

revision = "0016"
down_revision = "0015"
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
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ARRAY(SELECT chunks[2] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[2]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ARRAY(SELECT chunks[3] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[3]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ARRAY(SELECT chunks[4] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[4]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND bit_count((x.hash # query)::bit(64)) <= max_distance),
      -- With a row limit, only rows up to the limit's distance need their heap rows;
      -- they are fetched in key order, so neighbouring lookups share their pages.
      cut AS (
        SELECT bit_count((cand.xh # query)::bit(64)) AS d FROM cand
         ORDER BY 1 OFFSET greatest(max_rows - 1, 0) LIMIT 1)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM (SELECT * FROM cand ORDER BY cand.cid, cand.mid) cand JOIN image_hashes h
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
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ARRAY(SELECT chunks[2] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[2]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ARRAY(SELECT chunks[3] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[3]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ARRAY(SELECT chunks[4] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[4]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance),
      -- With a row limit, only rows up to the limit's distance need their heap rows;
      -- they are fetched in key order, so neighbouring lookups share their pages.
      cut AS (
        SELECT bit_count((cand.xh # query)::bit(64)) AS d FROM cand
         ORDER BY 1 OFFSET greatest(max_rows - 1, 0) LIMIT 1)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM (SELECT * FROM cand ORDER BY cand.mid) cand JOIN image_hashes h
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
    op.execute(AHASH_SEARCH_INDEX)


def downgrade() -> None:
    op.execute(earlier_migration(__file__, "0010_leakproof_algorithm_key.py").AHASH_SEARCH_INDEX)
