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

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


AHASH_ALGORITHM_CODE = """
CREATE FUNCTION ahash_algorithm_code(algorithm ahash_algorithm) RETURNS smallint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE algorithm WHEN 'ahash' THEN 0 WHEN 'phash' THEN 1 WHEN 'dhash' THEN 2 WHEN 'whash' THEN 3 END
"""


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


AHASH_NEAREST = """
CREATE OR REPLACE FUNCTION ahash_nearest(company bigint, query bigint, k integer,
                                         algorithm ahash_algorithm DEFAULT 'ahash')
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
  within CONSTANT bigint[] := '{1,17,137,697,2517,6885,14893,26333,39203,50643,58651,63019,64839,65399,65519,65535,65536}';
  chunk integer[];
  radius integer[] := ARRAY[-1, -1, -1, -1];
  covered integer := -1;
  est double precision;
  est_read boolean := false;
  probed bigint := 0;
  i integer := 0;
  bound integer := 64;
  -- hist[d + 1]: how many candidates lie at distance d
  hist integer[] := array_fill(0, ARRAY[65]);
  total bigint := 0;
  acc bigint;
  d integer;
  c_cid bigint[] := '{}';
  c_mid bigint[] := '{}';
  c_xh bigint[] := '{}';
  n_cid bigint[];
  n_mid bigint[];
  n_xh bigint[];
  n_d integer[];
BEGIN
  IF query IS NULL OR k IS NULL OR ahash_nearest.algorithm IS NULL THEN
    RETURN;
  END IF;
  IF k < 0 THEN
    RAISE EXCEPTION 'ahash_nearest: k must be 0 or more, got %', k USING ERRCODE = '22023';
  END IF;
  IF k = 0 THEN
    RETURN;
  END IF;
  chunk := ahash_chunks(query);
  LOOP
    i := i % 4 + 1;
    radius[i] := radius[i] + 1;
    covered := covered + 1;
    -- (the probes of one radius in one chunk: those within it minus those within one less)
    probed := probed + within[radius[i] + 1] - coalesce(within[radius[i]], 0);
    IF probed > 256 AND NOT est_read THEN
      est := ahash_company_rows_estimate(company);
      est_read := true;
    END IF;
    IF covered >= 24 OR (probed > 256 AND est IS NOT NULL AND est < probed * 8) THEN
      RETURN QUERY
        SELECT s.id, s.company_id, s.meta_id, s.hash, s.distance, s.source
          FROM ahash_search_scan(company, query, 64, k, ahash_nearest.algorithm) AS s;
      RETURN;
    END IF;
    IF i = 1 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),
             array_agg(bit_count((x.hash # query)::bit(64))::integer)
        INTO n_cid, n_mid, n_xh, n_d
        FROM image_hashes x
       WHERE x.c0 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]))
         AND x.algorithm_code = ahash_algorithm_code(ahash_nearest.algorithm) AND bit_count((x.hash # query)::bit(64)) <= bound
         AND NOT (radius[2] >= 0 AND bit_count(((((x.hash << 2) & 17544) | ((x.hash >> 17) & 8772) | ((x.hash >> 32) & 4386) | ((x.hash >> 40) & 34816) | ((x.hash >> 58) & 17))::integer # chunk[2])::bit(32)) <= radius[2]
              OR radius[3] >= 0 AND bit_count(((((x.hash << 11) & 34816) | ((x.hash >> 8) & 17544) | ((x.hash >> 23) & 8772) | ((x.hash >> 42) & 4386) | ((x.hash >> 57) & 17))::integer # chunk[3])::bit(32)) <= radius[3]
              OR radius[4] >= 0 AND bit_count((((x.hash & 17544) | ((x.hash >> 15) & 8772) | ((x.hash >> 24) & 34816) | ((x.hash >> 41) & 4386) | ((x.hash >> 56) & 17))::integer # chunk[4])::bit(32)) <= radius[4]);
    ELSIF i = 1 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),
             array_agg(bit_count((x.hash # query)::bit(64))::integer)
        INTO n_cid, n_mid, n_xh, n_d
        FROM image_hashes x
       WHERE x.c0 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]))
         AND x.algorithm_code = ahash_algorithm_code(ahash_nearest.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound
         AND NOT (radius[2] >= 0 AND bit_count(((((x.hash << 2) & 17544) | ((x.hash >> 17) & 8772) | ((x.hash >> 32) & 4386) | ((x.hash >> 40) & 34816) | ((x.hash >> 58) & 17))::integer # chunk[2])::bit(32)) <= radius[2]
              OR radius[3] >= 0 AND bit_count(((((x.hash << 11) & 34816) | ((x.hash >> 8) & 17544) | ((x.hash >> 23) & 8772) | ((x.hash >> 42) & 4386) | ((x.hash >> 57) & 17))::integer # chunk[3])::bit(32)) <= radius[3]
              OR radius[4] >= 0 AND bit_count((((x.hash & 17544) | ((x.hash >> 15) & 8772) | ((x.hash >> 24) & 34816) | ((x.hash >> 41) & 4386) | ((x.hash >> 56) & 17))::integer # chunk[4])::bit(32)) <= radius[4]);
    ELSIF i = 2 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),
             array_agg(bit_count((x.hash # query)::bit(64))::integer)
        INTO n_cid, n_mid, n_xh, n_d
        FROM image_hashes x
       WHERE x.c1 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]))
         AND x.algorithm_code = ahash_algorithm_code(ahash_nearest.algorithm) AND bit_count((x.hash # query)::bit(64)) <= bound
         AND NOT (radius[1] >= 0 AND bit_count(((((x.hash << 9) & 34816) | ((x.hash >> 6) & 17544) | ((x.hash >> 25) & 8772) | ((x.hash >> 40) & 4386) | ((x.hash >> 59) & 17))::integer # chunk[1])::bit(32)) <= radius[1]
              OR radius[3] >= 0 AND bit_count(((((x.hash << 11) & 34816) | ((x.hash >> 8) & 17544) | ((x.hash >> 23) & 8772) | ((x.hash >> 42) & 4386) | ((x.hash >> 57) & 17))::integer # chunk[3])::bit(32)) <= radius[3]
              OR radius[4] >= 0 AND bit_count((((x.hash & 17544) | ((x.hash >> 15) & 8772) | ((x.hash >> 24) & 34816) | ((x.hash >> 41) & 4386) | ((x.hash >> 56) & 17))::integer # chunk[4])::bit(32)) <= radius[4]);
    ELSIF i = 2 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),
             array_agg(bit_count((x.hash # query)::bit(64))::integer)
        INTO n_cid, n_mid, n_xh, n_d
        FROM image_hashes x
       WHERE x.c1 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]))
         AND x.algorithm_code = ahash_algorithm_code(ahash_nearest.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound
         AND NOT (radius[1] >= 0 AND bit_count(((((x.hash << 9) & 34816) | ((x.hash >> 6) & 17544) | ((x.hash >> 25) & 8772) | ((x.hash >> 40) & 4386) | ((x.hash >> 59) & 17))::integer # chunk[1])::bit(32)) <= radius[1]
              OR radius[3] >= 0 AND bit_count(((((x.hash << 11) & 34816) | ((x.hash >> 8) & 17544) | ((x.hash >> 23) & 8772) | ((x.hash >> 42) & 4386) | ((x.hash >> 57) & 17))::integer # chunk[3])::bit(32)) <= radius[3]
              OR radius[4] >= 0 AND bit_count((((x.hash & 17544) | ((x.hash >> 15) & 8772) | ((x.hash >> 24) & 34816) | ((x.hash >> 41) & 4386) | ((x.hash >> 56) & 17))::integer # chunk[4])::bit(32)) <= radius[4]);
    ELSIF i = 3 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),
             array_agg(bit_count((x.hash # query)::bit(64))::integer)
        INTO n_cid, n_mid, n_xh, n_d
        FROM image_hashes x
       WHERE x.c2 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]))
         AND x.algorithm_code = ahash_algorithm_code(ahash_nearest.algorithm) AND bit_count((x.hash # query)::bit(64)) <= bound
         AND NOT (radius[1] >= 0 AND bit_count(((((x.hash << 9) & 34816) | ((x.hash >> 6) & 17544) | ((x.hash >> 25) & 8772) | ((x.hash >> 40) & 4386) | ((x.hash >> 59) & 17))::integer # chunk[1])::bit(32)) <= radius[1]
              OR radius[2] >= 0 AND bit_count(((((x.hash << 2) & 17544) | ((x.hash >> 17) & 8772) | ((x.hash >> 32) & 4386) | ((x.hash >> 40) & 34816) | ((x.hash >> 58) & 17))::integer # chunk[2])::bit(32)) <= radius[2]
              OR radius[4] >= 0 AND bit_count((((x.hash & 17544) | ((x.hash >> 15) & 8772) | ((x.hash >> 24) & 34816) | ((x.hash >> 41) & 4386) | ((x.hash >> 56) & 17))::integer # chunk[4])::bit(32)) <= radius[4]);
    ELSIF i = 3 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),
             array_agg(bit_count((x.hash # query)::bit(64))::integer)
        INTO n_cid, n_mid, n_xh, n_d
        FROM image_hashes x
       WHERE x.c2 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]))
         AND x.algorithm_code = ahash_algorithm_code(ahash_nearest.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound
         AND NOT (radius[1] >= 0 AND bit_count(((((x.hash << 9) & 34816) | ((x.hash >> 6) & 17544) | ((x.hash >> 25) & 8772) | ((x.hash >> 40) & 4386) | ((x.hash >> 59) & 17))::integer # chunk[1])::bit(32)) <= radius[1]
              OR radius[2] >= 0 AND bit_count(((((x.hash << 2) & 17544) | ((x.hash >> 17) & 8772) | ((x.hash >> 32) & 4386) | ((x.hash >> 40) & 34816) | ((x.hash >> 58) & 17))::integer # chunk[2])::bit(32)) <= radius[2]
              OR radius[4] >= 0 AND bit_count((((x.hash & 17544) | ((x.hash >> 15) & 8772) | ((x.hash >> 24) & 34816) | ((x.hash >> 41) & 4386) | ((x.hash >> 56) & 17))::integer # chunk[4])::bit(32)) <= radius[4]);
    ELSIF i = 4 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),
             array_agg(bit_count((x.hash # query)::bit(64))::integer)
        INTO n_cid, n_mid, n_xh, n_d
        FROM image_hashes x
       WHERE x.c3 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]))
         AND x.algorithm_code = ahash_algorithm_code(ahash_nearest.algorithm) AND bit_count((x.hash # query)::bit(64)) <= bound
         AND NOT (radius[1] >= 0 AND bit_count(((((x.hash << 9) & 34816) | ((x.hash >> 6) & 17544) | ((x.hash >> 25) & 8772) | ((x.hash >> 40) & 4386) | ((x.hash >> 59) & 17))::integer # chunk[1])::bit(32)) <= radius[1]
              OR radius[2] >= 0 AND bit_count(((((x.hash << 2) & 17544) | ((x.hash >> 17) & 8772) | ((x.hash >> 32) & 4386) | ((x.hash >> 40) & 34816) | ((x.hash >> 58) & 17))::integer # chunk[2])::bit(32)) <= radius[2]
              OR radius[3] >= 0 AND bit_count(((((x.hash << 11) & 34816) | ((x.hash >> 8) & 17544) | ((x.hash >> 23) & 8772) | ((x.hash >> 42) & 4386) | ((x.hash >> 57) & 17))::integer # chunk[3])::bit(32)) <= radius[3]);
    ELSIF i = 4 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),
             array_agg(bit_count((x.hash # query)::bit(64))::integer)
        INTO n_cid, n_mid, n_xh, n_d
        FROM image_hashes x
       WHERE x.c3 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]))
         AND x.algorithm_code = ahash_algorithm_code(ahash_nearest.algorithm) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound
         AND NOT (radius[1] >= 0 AND bit_count(((((x.hash << 9) & 34816) | ((x.hash >> 6) & 17544) | ((x.hash >> 25) & 8772) | ((x.hash >> 40) & 4386) | ((x.hash >> 59) & 17))::integer # chunk[1])::bit(32)) <= radius[1]
              OR radius[2] >= 0 AND bit_count(((((x.hash << 2) & 17544) | ((x.hash >> 17) & 8772) | ((x.hash >> 32) & 4386) | ((x.hash >> 40) & 34816) | ((x.hash >> 58) & 17))::integer # chunk[2])::bit(32)) <= radius[2]
              OR radius[3] >= 0 AND bit_count(((((x.hash << 11) & 34816) | ((x.hash >> 8) & 17544) | ((x.hash >> 23) & 8772) | ((x.hash >> 42) & 4386) | ((x.hash >> 57) & 17))::integer # chunk[3])::bit(32)) <= radius[3]);
    END IF;
    IF n_d IS NOT NULL THEN
      c_cid := c_cid || n_cid;
      c_mid := c_mid || n_mid;
      c_xh := c_xh || n_xh;
      FOREACH d IN ARRAY n_d LOOP
        hist[d + 1] := hist[d + 1] + 1;
      END LOOP;
      total := total + cardinality(n_d);
    END IF;
    IF total >= k THEN
      -- the k-th smallest distance found so far: no farther row can be in the answer
      acc := 0;
      d := -1;
      WHILE acc < k LOOP
        d := d + 1;
        acc := acc + hist[d + 1];
      END LOOP;
      bound := d;
      -- every row within `covered` has been found (pigeonhole), so k of them are the answer
      EXIT WHEN bound <= covered;
    END IF;
  END LOOP;
  RETURN QUERY
    WITH cand AS (
      SELECT u.cid, u.mid, u.xh FROM unnest(c_cid, c_mid, c_xh) AS u(cid, mid, xh)
       WHERE bit_count((u.xh # query)::bit(64)) <= bound)
    SELECT h.id, h.company_id, h.meta_id, h.hash,
           bit_count((h.hash # query)::bit(64))::integer, h.source
      FROM cand JOIN image_hashes h
        ON h.company_id = cand.cid AND h.meta_id = cand.mid AND h.algorithm = ahash_nearest.algorithm
       AND h.hash = cand.xh
     ORDER BY 5, 1
     LIMIT k;
END
$fn$
"""


def upgrade() -> None:
    for statement in (
        AHASH_ALGORITHM_CODE,
        'DROP INDEX image_hashes_c0_idx',
        'DROP INDEX image_hashes_c1_idx',
        'DROP INDEX image_hashes_c2_idx',
        'DROP INDEX image_hashes_c3_idx',
        'ALTER TABLE image_hashes ADD COLUMN algorithm_code smallint GENERATED ALWAYS AS (ahash_algorithm_code(algorithm)) STORED NOT NULL',
        'CREATE INDEX image_hashes_c0_idx ON image_hashes (c0, algorithm_code, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c1_idx ON image_hashes (c1, algorithm_code, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c2_idx ON image_hashes (c2, algorithm_code, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c3_idx ON image_hashes (c3, algorithm_code, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        AHASH_SEARCH_INDEX,
        AHASH_NEAREST,
        'ANALYZE image_hashes',
    ):
        op.execute(statement)


def downgrade() -> None:
    r0009 = earlier_migration(__file__, "0009_probe_masks_before_vacuum.py")
    r0008 = earlier_migration(__file__, "0008_nearest_counts_as_it_goes.py")
    for statement in (
        'DROP INDEX image_hashes_c0_idx',
        'DROP INDEX image_hashes_c1_idx',
        'DROP INDEX image_hashes_c2_idx',
        'DROP INDEX image_hashes_c3_idx',
        'ALTER TABLE image_hashes DROP COLUMN algorithm_code',
        'CREATE INDEX image_hashes_c0_idx ON image_hashes (c0, algorithm, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c1_idx ON image_hashes (c1, algorithm, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c2_idx ON image_hashes (c2, algorithm, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c3_idx ON image_hashes (c3, algorithm, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        r0009.AHASH_SEARCH_INDEX,
        r0008.AHASH_NEAREST,
        'DROP FUNCTION ahash_algorithm_code(ahash_algorithm)',
        'ANALYZE image_hashes',
    ):
        op.execute(statement)
