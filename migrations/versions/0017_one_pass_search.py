"""A search finds each candidate once, and fetches a company's rows in one index scan.

Every row within T bits is found by at least one chunk's probe, and often by two or three.
Until now the four probes were joined by ``UNION``, which hashed every candidate to drop
the repeats. Now a chunk's branch keeps a row only if no earlier chunk is within its
radius of it (the test ``ahash_nearest`` has made since schema 0008), so each row comes
from exactly one branch and ``UNION ALL`` suffices.

The rows found were then fetched one primary-key descent each (sorted by key since 0016).
Now they are fetched per company by one primary-key scan with ``meta_id = ANY(…)`` over
the company's candidates, which walks the index leaves from key to key and descends again
only when the next key is far: a 3,114-row answer took 404 descents instead of 3,114. The
scan's distance filter keeps every row of those meta_ids within T (or, with a row limit,
within the limit's distance), which is exactly the answer, since every such row is a
candidate. Same answers, same order.

The function also turns parallel query off for itself: with ``UNION ALL`` the planner
may put the four probes under a Gather with two workers, and starting them costs 8-10
ms, against a fraction of a millisecond for the search (measured: one company at T=0,
7.27 ms with the workers, 0.2 ms without). A search is a short query, and many run at
once: each keeps to one backend.

At 1M rows (ad hoc: 80 stored hashes as queries, each the median of 4 interleaved runs of
0016 and this revision), searches with the largest tenth of answers went from 122 to 109
ms with the first change alone (all companies, T=10, about 19,000 rows) and from 238 to
206 ms at T=12 (38,000 rows); the second change took the T=12 ones from 173 to 146 ms
against the first alone. Medians moved by less than the noise.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

from ahashdb.migrating import earlier_migration

revision = "0017"
down_revision = "0016"
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
  SET max_parallel_workers_per_gather = 0
AS $fn$
#variable_conflict use_column
DECLARE
  radii integer[] := ahash_chunk_radii(max_distance);
  chunks integer[] := ahash_chunks(query);
BEGIN
  IF company IS NULL THEN
    RETURN QUERY
      -- Each row within T is kept by the first chunk whose probe finds it: a later chunk
      -- drops rows an earlier chunk is within its radius of (the masks are the 64-bit
      -- positions of chunks 0, 1, 2), so the branches never overlap and need no UNION.
      WITH cand AS (
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c0 = ANY(ARRAY(SELECT chunks[1] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[1]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION ALL
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ARRAY(SELECT chunks[2] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[2]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND bit_count((x.hash # query)::bit(64)) <= max_distance
           AND bit_count(((x.hash # query) & -8642088532211326396)::bit(64)) > radii[1]
        UNION ALL
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ARRAY(SELECT chunks[3] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[3]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND bit_count((x.hash # query)::bit(64)) <= max_distance
           AND bit_count(((x.hash # query) & -8642088532211326396)::bit(64)) > radii[1]
           AND bit_count(((x.hash # query) & 4938215830288077090)::bit(64)) > radii[2]
        UNION ALL
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ARRAY(SELECT chunks[4] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[4]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND bit_count((x.hash # query)::bit(64)) <= max_distance
           AND bit_count(((x.hash # query) & -8642088532211326396)::bit(64)) > radii[1]
           AND bit_count(((x.hash # query) & 4938215830288077090)::bit(64)) > radii[2]
           AND bit_count(((x.hash # query) & 2469248102876612625)::bit(64)) > radii[3]),
      -- With a row limit, only rows up to the limit's distance need their heap rows.
      -- They are fetched by one primary-key scan per company over its candidates'
      -- meta_ids, which descends the index once for many neighbouring keys.
      cut AS (
        SELECT bit_count((cand.xh # query)::bit(64)) AS d FROM cand
         ORDER BY 1 OFFSET greatest(max_rows - 1, 0) LIMIT 1)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM (SELECT cand.cid, array_agg(cand.mid) AS mids FROM cand
               WHERE max_rows IS NULL
                  OR bit_count((cand.xh # query)::bit(64)) <= coalesce((SELECT cut.d FROM cut), 64)
               GROUP BY cand.cid) g
        CROSS JOIN LATERAL (
          SELECT * FROM image_hashes h
           WHERE h.company_id = g.cid AND h.meta_id = ANY(g.mids)
             AND h.algorithm = ahash_search_index.algorithm
             AND bit_count((h.hash # query)::bit(64)) <= max_distance
             AND (max_rows IS NULL
                  OR bit_count((h.hash # query)::bit(64)) <= coalesce((SELECT cut.d FROM cut), 64))) h
       ORDER BY 5, 1
       LIMIT max_rows;
  ELSE
    RETURN QUERY
      -- Each row within T is kept by the first chunk whose probe finds it: a later chunk
      -- drops rows an earlier chunk is within its radius of (the masks are the 64-bit
      -- positions of chunks 0, 1, 2), so the branches never overlap and need no UNION.
      WITH cand AS (
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c0 = ANY(ARRAY(SELECT chunks[1] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[1]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION ALL
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ARRAY(SELECT chunks[2] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[2]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
           AND bit_count(((x.hash # query) & -8642088532211326396)::bit(64)) > radii[1]
        UNION ALL
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ARRAY(SELECT chunks[3] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[3]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
           AND bit_count(((x.hash # query) & -8642088532211326396)::bit(64)) > radii[1]
           AND bit_count(((x.hash # query) & 4938215830288077090)::bit(64)) > radii[2]
        UNION ALL
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ARRAY(SELECT chunks[4] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight BETWEEN 0 AND radii[4]))
           AND x.algorithm_code = ahash_algorithm_code(ahash_search_index.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
           AND bit_count(((x.hash # query) & -8642088532211326396)::bit(64)) > radii[1]
           AND bit_count(((x.hash # query) & 4938215830288077090)::bit(64)) > radii[2]
           AND bit_count(((x.hash # query) & 2469248102876612625)::bit(64)) > radii[3]),
      -- With a row limit, only rows up to the limit's distance need their heap rows.
      -- They are fetched by one primary-key scan per company over its candidates'
      -- meta_ids, which descends the index once for many neighbouring keys.
      cut AS (
        SELECT bit_count((cand.xh # query)::bit(64)) AS d FROM cand
         ORDER BY 1 OFFSET greatest(max_rows - 1, 0) LIMIT 1)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM image_hashes h
       WHERE h.company_id = company
         AND h.meta_id = ANY(ARRAY(
               SELECT cand.mid FROM cand
                WHERE max_rows IS NULL
                   OR bit_count((cand.xh # query)::bit(64)) <= coalesce((SELECT cut.d FROM cut), 64)))
         AND h.algorithm = ahash_search_index.algorithm
         AND bit_count((h.hash # query)::bit(64)) <= max_distance
         AND (max_rows IS NULL
              OR bit_count((h.hash # query)::bit(64)) <= coalesce((SELECT cut.d FROM cut), 64))
       ORDER BY 5, 1
       LIMIT max_rows;
  END IF;
END
$fn$
"""


def upgrade() -> None:
    op.execute(AHASH_SEARCH_INDEX)


def downgrade() -> None:
    op.execute(earlier_migration(__file__, "0016_fetch_in_key_order.py").AHASH_SEARCH_INDEX)
