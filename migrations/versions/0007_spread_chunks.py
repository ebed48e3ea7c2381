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

from alembic import op

from ahashdb.migrating import earlier_migration

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


SPREAD_CHUNK_COLUMNS = """ALTER TABLE image_hashes DROP COLUMN c0, DROP COLUMN c1, DROP COLUMN c2, DROP COLUMN c3, ADD COLUMN c0 integer GENERATED ALWAYS AS ((((hash << 9) & 34816) | ((hash >> 6) & 17544) | ((hash >> 25) & 8772) | ((hash >> 40) & 4386) | ((hash >> 59) & 17))::integer) STORED NOT NULL, ADD COLUMN c1 integer GENERATED ALWAYS AS ((((hash << 2) & 17544) | ((hash >> 17) & 8772) | ((hash >> 32) & 4386) | ((hash >> 40) & 34816) | ((hash >> 58) & 17))::integer) STORED NOT NULL, ADD COLUMN c2 integer GENERATED ALWAYS AS ((((hash << 11) & 34816) | ((hash >> 8) & 17544) | ((hash >> 23) & 8772) | ((hash >> 42) & 4386) | ((hash >> 57) & 17))::integer) STORED NOT NULL, ADD COLUMN c3 integer GENERATED ALWAYS AS (((hash & 17544) | ((hash >> 15) & 8772) | ((hash >> 24) & 34816) | ((hash >> 41) & 4386) | ((hash >> 56) & 17))::integer) STORED NOT NULL"""


AHASH_CHUNKS = """
CREATE FUNCTION ahash_chunks(value bigint) RETURNS integer[]
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN ARRAY[(((value << 9) & 34816) | ((value >> 6) & 17544) | ((value >> 25) & 8772) | ((value >> 40) & 4386) | ((value >> 59) & 17))::integer, (((value << 2) & 17544) | ((value >> 17) & 8772) | ((value >> 32) & 4386) | ((value >> 40) & 34816) | ((value >> 58) & 17))::integer, (((value << 11) & 34816) | ((value >> 8) & 17544) | ((value >> 23) & 8772) | ((value >> 42) & 4386) | ((value >> 57) & 17))::integer, ((value & 17544) | ((value >> 15) & 8772) | ((value >> 24) & 34816) | ((value >> 41) & 4386) | ((value >> 56) & 17))::integer]
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
                                   WHERE m.weight <= radii[1]))
           AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ARRAY(SELECT chunks[2] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight <= radii[2]))
           AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ARRAY(SELECT chunks[3] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight <= radii[3]))
           AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ARRAY(SELECT chunks[4] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight <= radii[4]))
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
                                   WHERE m.weight <= radii[1]))
           AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ARRAY(SELECT chunks[2] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight <= radii[2]))
           AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ARRAY(SELECT chunks[3] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight <= radii[3]))
           AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ARRAY(SELECT chunks[4] # m.mask FROM ahash_chunk_masks m
                                   WHERE m.weight <= radii[4]))
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
  probed bigint := 0;
  i integer := 0;
  bound integer := 64;
  found bigint;
  kth integer;
  c_cid bigint[] := '{}';
  c_mid bigint[] := '{}';
  c_xh bigint[] := '{}';
  n_cid bigint[];
  n_mid bigint[];
  n_xh bigint[];
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
  est := ahash_company_rows_estimate(company);
  LOOP
    i := i % 4 + 1;
    radius[i] := radius[i] + 1;
    covered := covered + 1;
    -- (the probes of one radius in one chunk: those within it minus those within one less)
    probed := probed + within[radius[i] + 1] - coalesce(within[radius[i]], 0);
    IF covered >= 24 OR (probed > 256 AND est IS NOT NULL AND est < probed * 8) THEN
      RETURN QUERY
        SELECT s.id, s.company_id, s.meta_id, s.hash, s.distance, s.source
          FROM ahash_search_scan(company, query, 64, k, ahash_nearest.algorithm) AS s;
      RETURN;
    END IF;
    IF i = 1 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM image_hashes x
       WHERE x.c0 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i])) AND x.algorithm = ahash_nearest.algorithm AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 1 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM image_hashes x
       WHERE x.c0 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i])) AND x.algorithm = ahash_nearest.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 2 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM image_hashes x
       WHERE x.c1 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i])) AND x.algorithm = ahash_nearest.algorithm AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 2 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM image_hashes x
       WHERE x.c1 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i])) AND x.algorithm = ahash_nearest.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 3 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM image_hashes x
       WHERE x.c2 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i])) AND x.algorithm = ahash_nearest.algorithm AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 3 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM image_hashes x
       WHERE x.c2 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i])) AND x.algorithm = ahash_nearest.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 4 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM image_hashes x
       WHERE x.c3 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i])) AND x.algorithm = ahash_nearest.algorithm AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 4 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM image_hashes x
       WHERE x.c3 = ANY(ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i])) AND x.algorithm = ahash_nearest.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound;
    END IF;
    IF n_cid IS NOT NULL THEN
      c_cid := c_cid || n_cid;
      c_mid := c_mid || n_mid;
      c_xh := c_xh || n_xh;
    END IF;
    IF cardinality(c_cid) >= k THEN
      SELECT count(*) FILTER (WHERE u.d <= covered),
             (array_agg(u.d ORDER BY u.d))[k]
        INTO found, kth
        FROM (SELECT DISTINCT u.cid, u.mid, u.xh, bit_count((u.xh # query)::bit(64)) AS d
                FROM unnest(c_cid, c_mid, c_xh) AS u(cid, mid, xh)) AS u;
      bound := coalesce(kth, 64);
      EXIT WHEN found >= k;
    END IF;
  END LOOP;
  RETURN QUERY
    WITH cand AS (
      SELECT DISTINCT u.cid, u.mid, u.xh FROM unnest(c_cid, c_mid, c_xh) AS u(cid, mid, xh)
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


ROW_CHUNK_COLUMNS = """ALTER TABLE image_hashes DROP COLUMN c0, DROP COLUMN c1, DROP COLUMN c2, DROP COLUMN c3, ADD COLUMN c0 integer GENERATED ALWAYS AS ((((hash >> 48) & 65535))::integer) STORED NOT NULL, ADD COLUMN c1 integer GENERATED ALWAYS AS ((((hash >> 32) & 65535))::integer) STORED NOT NULL, ADD COLUMN c2 integer GENERATED ALWAYS AS ((((hash >> 16) & 65535))::integer) STORED NOT NULL, ADD COLUMN c3 integer GENERATED ALWAYS AS (((hash & 65535))::integer) STORED NOT NULL"""


AHASH_SEARCH_INDEX_BEFORE = """
CREATE OR REPLACE FUNCTION ahash_search_index(company bigint, query bigint, max_distance integer,
                                   max_rows integer, algorithm ahash_algorithm)
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
  p0 integer[] := ahash_probes(((query >> 48) & 65535)::integer, radii[1]);
  p1 integer[] := ahash_probes(((query >> 32) & 65535)::integer, radii[2]);
  p2 integer[] := ahash_probes(((query >> 16) & 65535)::integer, radii[3]);
  p3 integer[] := ahash_probes((query & 65535)::integer, radii[4]);
  none integer[] := '{}';
  -- Up to 137 probes (radius <= 2) are joined, one descent each; more are matched with
  -- = ANY, which shares descents between neighbouring values.
  pj0 integer[] := CASE WHEN radii[1] <= 2 THEN p0 ELSE none END;
  pj1 integer[] := CASE WHEN radii[2] <= 2 THEN p1 ELSE none END;
  pj2 integer[] := CASE WHEN radii[3] <= 2 THEN p2 ELSE none END;
  pj3 integer[] := CASE WHEN radii[4] <= 2 THEN p3 ELSE none END;
  ps0 integer[] := CASE WHEN radii[1] <= 2 THEN none ELSE p0 END;
  ps1 integer[] := CASE WHEN radii[2] <= 2 THEN none ELSE p1 END;
  ps2 integer[] := CASE WHEN radii[3] <= 2 THEN none ELSE p2 END;
  ps3 integer[] := CASE WHEN radii[4] <= 2 THEN none ELSE p3 END;
BEGIN
  IF company IS NULL THEN
    RETURN QUERY
      WITH cand AS (
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj0) AS v(c)
          JOIN image_hashes x ON x.c0 = v.c
         WHERE x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c0 = ANY(ps0) AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj1) AS v(c)
          JOIN image_hashes x ON x.c1 = v.c
         WHERE x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ps1) AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj2) AS v(c)
          JOIN image_hashes x ON x.c2 = v.c
         WHERE x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ps2) AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj3) AS v(c)
          JOIN image_hashes x ON x.c3 = v.c
         WHERE x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ps3) AND x.algorithm = ahash_search_index.algorithm AND bit_count((x.hash # query)::bit(64)) <= max_distance),
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
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj0) AS v(c)
          JOIN image_hashes x ON x.c0 = v.c
         WHERE x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c0 = ANY(ps0) AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj1) AS v(c)
          JOIN image_hashes x ON x.c1 = v.c
         WHERE x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ps1) AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj2) AS v(c)
          JOIN image_hashes x ON x.c2 = v.c
         WHERE x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ps2) AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj3) AS v(c)
          JOIN image_hashes x ON x.c3 = v.c
         WHERE x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ps3) AND x.algorithm = ahash_search_index.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance),
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
        SPREAD_CHUNK_COLUMNS,
        'CREATE INDEX image_hashes_c0_idx ON image_hashes (c0, algorithm, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c1_idx ON image_hashes (c1, algorithm, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c2_idx ON image_hashes (c2, algorithm, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        'CREATE INDEX image_hashes_c3_idx ON image_hashes (c3, algorithm, company_id) INCLUDE (hash, meta_id) WITH (fillfactor = 80)',
        AHASH_CHUNKS,
        AHASH_SEARCH_INDEX,
        AHASH_NEAREST,
        'ANALYZE image_hashes',
    ):
        op.execute(statement)


def downgrade() -> None:
    r0006 = earlier_migration(__file__, "0006_cheap_search_plan.py")
    for statement in (
        ROW_CHUNK_COLUMNS,
        'CREATE INDEX image_hashes_c0_idx ON image_hashes (c0, algorithm, company_id) INCLUDE (hash, meta_id)',
        'CREATE INDEX image_hashes_c1_idx ON image_hashes (c1, algorithm, company_id) INCLUDE (hash, meta_id)',
        'CREATE INDEX image_hashes_c2_idx ON image_hashes (c2, algorithm, company_id) INCLUDE (hash, meta_id)',
        'CREATE INDEX image_hashes_c3_idx ON image_hashes (c3, algorithm, company_id) INCLUDE (hash, meta_id)',
        AHASH_SEARCH_INDEX_BEFORE,
        r0006.AHASH_NEAREST,
        'DROP FUNCTION ahash_chunks(bigint)',
        'ANALYZE image_hashes',
    ):
        op.execute(statement)
