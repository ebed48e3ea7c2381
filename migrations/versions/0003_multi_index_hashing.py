"""Multi-index hashing: chunk columns, covering chunk indexes, exact indexed search and top-k.

The 64 bits are cut into four 16-bit chunks c0..c3 (c0 = the most significant bits).
If two hashes are within distance T, then for radii r_i with sum(r_i + 1) >= T + 1 at
least one chunk i differs in at most r_i bits (pigeonhole; Norouzi, Punjani & Fleet,
CVPR 2012). ahash_search probes, per chunk, every value within r_i bits through the B-tree
on (c_i, company_id) INCLUDE (hash, meta_id), checks the full distance on the index
tuple (index-only scan) and fetches only the matching rows, by primary key. Where probing
would cost more than reading the company's rows, it scans instead. Either way the answer
is exact.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


AHASH_CHUNK_MASKS_TABLE = """
CREATE TABLE ahash_chunk_masks (
  weight smallint NOT NULL,
  mask integer NOT NULL,
  CONSTRAINT ahash_chunk_masks_pkey PRIMARY KEY (weight, mask)
)
"""


FILL_AHASH_CHUNK_MASKS = """
INSERT INTO ahash_chunk_masks (weight, mask)
SELECT bit_count(m::bit(16)), m FROM generate_series(0, 65535) AS m
"""


AHASH_CHUNK_RADII = """
CREATE FUNCTION ahash_chunk_radii(max_distance integer) RETURNS integer[]
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN ARRAY(
    SELECT (max_distance + 1) / 4 + CASE WHEN i < (max_distance + 1) % 4 THEN 1 ELSE 0 END - 1
      FROM generate_series(0, 3) AS i ORDER BY i)
"""


AHASH_PROBES = """
CREATE FUNCTION ahash_probes(chunk integer, radius integer) RETURNS integer[]
  LANGUAGE sql STABLE STRICT PARALLEL SAFE
  RETURN ARRAY(SELECT chunk # m.mask FROM ahash_chunk_masks m WHERE m.weight <= radius)
"""


AHASH_PROBE_COUNT = """
CREATE FUNCTION ahash_probe_count(max_distance integer) RETURNS bigint
  LANGUAGE sql STABLE STRICT PARALLEL SAFE
  RETURN (SELECT count(*) FROM unnest(ahash_chunk_radii(max_distance)) AS r
            JOIN ahash_chunk_masks m ON m.weight <= r)
"""


AHASH_COMPANY_ROWS_ESTIMATE = """
CREATE FUNCTION ahash_company_rows_estimate(company bigint) RETURNS double precision
  LANGUAGE sql STABLE PARALLEL SAFE
  RETURN (
    SELECT CASE
      WHEN c.reltuples < 0 THEN NULL
      WHEN company IS NULL THEN c.reltuples::double precision
      WHEN s.attname IS NULL THEN NULL
      WHEN company = ANY(s.most_common_vals::text::bigint[]) THEN
        c.reltuples * s.most_common_freqs[
          array_position(s.most_common_vals::text::bigint[], company)]
      ELSE
        c.reltuples * (1 - coalesce((SELECT sum(f) FROM unnest(s.most_common_freqs) AS f), 0))
        / greatest(
            CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * c.reltuples ELSE s.n_distinct END
            - coalesce(cardinality(s.most_common_freqs), 0), 1)
    END
    FROM pg_class c
    LEFT JOIN pg_stats s
      ON s.schemaname = c.relnamespace::regnamespace::text
     AND s.tablename = c.relname AND s.attname = 'company_id'
    WHERE c.oid = 'image_hashes'::regclass)
"""


AHASH_SEARCH_PLAN = """
CREATE FUNCTION ahash_search_plan(company bigint, max_distance integer) RETURNS text
  LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$
DECLARE
  n_probes bigint;
  est double precision;
BEGIN
  IF max_distance >= 24 THEN
    RETURN 'scan';
  END IF;
  n_probes := ahash_probe_count(max_distance);
  IF n_probes <= 256 THEN
    RETURN 'index';
  END IF;
  est := ahash_company_rows_estimate(company);
  IF est IS NOT NULL AND est < n_probes * 8 THEN
    RETURN 'scan';
  END IF;
  RETURN 'index';
END
$fn$
"""


AHASH_SEARCH_INDEX = """
CREATE FUNCTION ahash_search_index(company bigint, query bigint, max_distance integer,
                                   max_rows integer)
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
         WHERE bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c0 = ANY(ps0) AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj1) AS v(c)
          JOIN image_hashes x ON x.c1 = v.c
         WHERE bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ps1) AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj2) AS v(c)
          JOIN image_hashes x ON x.c2 = v.c
         WHERE bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ps2) AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj3) AS v(c)
          JOIN image_hashes x ON x.c3 = v.c
         WHERE bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ps3) AND bit_count((x.hash # query)::bit(64)) <= max_distance),
      -- With a row limit, only rows up to the limit's distance need their heap rows.
      cut AS (
        SELECT bit_count((cand.xh # query)::bit(64)) AS d FROM cand
         ORDER BY 1 OFFSET greatest(max_rows - 1, 0) LIMIT 1)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM cand JOIN image_hashes h
          ON h.company_id = cand.cid AND h.meta_id = cand.mid AND h.hash = cand.xh
       WHERE max_rows IS NULL
          OR bit_count((cand.xh # query)::bit(64)) <= coalesce((SELECT cut.d FROM cut), 64)
       ORDER BY 5, 1
       LIMIT max_rows;
  ELSE
    RETURN QUERY
      WITH cand AS (
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj0) AS v(c)
          JOIN image_hashes x ON x.c0 = v.c
         WHERE x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c0 = ANY(ps0) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj1) AS v(c)
          JOIN image_hashes x ON x.c1 = v.c
         WHERE x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c1 = ANY(ps1) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj2) AS v(c)
          JOIN image_hashes x ON x.c2 = v.c
         WHERE x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c2 = ANY(ps2) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM unnest(pj3) AS v(c)
          JOIN image_hashes x ON x.c3 = v.c
         WHERE x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
        UNION
        SELECT x.company_id AS cid, x.meta_id AS mid, x.hash AS xh FROM image_hashes x
         WHERE x.c3 = ANY(ps3) AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance),
      -- With a row limit, only rows up to the limit's distance need their heap rows.
      cut AS (
        SELECT bit_count((cand.xh # query)::bit(64)) AS d FROM cand
         ORDER BY 1 OFFSET greatest(max_rows - 1, 0) LIMIT 1)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM cand JOIN image_hashes h
          ON h.company_id = company AND h.meta_id = cand.mid AND h.hash = cand.xh
       WHERE max_rows IS NULL
          OR bit_count((cand.xh # query)::bit(64)) <= coalesce((SELECT cut.d FROM cut), 64)
       ORDER BY 5, 1
       LIMIT max_rows;
  END IF;
END
$fn$
"""


AHASH_SEARCH_SCAN = """
CREATE FUNCTION ahash_search_scan(company bigint, query bigint, max_distance integer,
                                  max_rows integer)
  RETURNS TABLE (id bigint, company_id bigint, meta_id bigint, hash bigint,
                 distance integer, source text)
  LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$
#variable_conflict use_column
BEGIN
  IF company IS NULL THEN
    RETURN QUERY
      SELECT x.id, x.company_id, x.meta_id, x.hash,
             bit_count((x.hash # query)::bit(64))::integer, x.source
        FROM image_hashes x
       WHERE bit_count((x.hash # query)::bit(64)) <= max_distance
       ORDER BY 5, 1
       LIMIT max_rows;
  ELSE
    RETURN QUERY
      SELECT x.id, x.company_id, x.meta_id, x.hash,
             bit_count((x.hash # query)::bit(64))::integer, x.source
        FROM image_hashes x
       WHERE x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= max_distance
       ORDER BY 5, 1
       LIMIT max_rows;
  END IF;
END
$fn$
"""


AHASH_SEARCH = """
CREATE FUNCTION ahash_search(company bigint, query bigint, max_distance integer,
                             max_rows integer DEFAULT NULL)
  RETURNS TABLE (id bigint, company_id bigint, meta_id bigint, hash bigint,
                 distance integer, source text)
  LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$
BEGIN
  IF query IS NULL OR max_distance IS NULL THEN
    RETURN;
  END IF;
  IF max_distance < 0 THEN
    RAISE EXCEPTION 'ahash_search: max_distance must be 0 or more, got %', max_distance
      USING ERRCODE = '22023';
  END IF;
  IF max_rows IS NOT NULL AND max_rows < 0 THEN
    RAISE EXCEPTION 'ahash_search: max_rows must be 0 or more, got %', max_rows
      USING ERRCODE = '22023';
  END IF;
  IF ahash_search_plan(company, max_distance) = 'scan' THEN
    RETURN QUERY SELECT * FROM ahash_search_scan(company, query, max_distance, max_rows);
  ELSE
    RETURN QUERY SELECT * FROM ahash_search_index(company, query, max_distance, max_rows);
  END IF;
END
$fn$
"""


AHASH_NEAREST = """
CREATE FUNCTION ahash_nearest(company bigint, query bigint, k integer)
  RETURNS TABLE (id bigint, company_id bigint, meta_id bigint, hash bigint,
                 distance integer, source text)
  LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$
#variable_conflict use_column
DECLARE
  r integer;
  prev integer := -1;
  need integer;
  got integer;
BEGIN
  IF query IS NULL OR k IS NULL THEN
    RETURN;
  END IF;
  IF k < 0 THEN
    RAISE EXCEPTION 'ahash_nearest: k must be 0 or more, got %', k USING ERRCODE = '22023';
  END IF;
  need := k;
  IF need = 0 THEN
    RETURN;
  END IF;
  FOREACH r IN ARRAY ARRAY[0, 2, 4, 6, 8, 10, 12, 16, 20, 64] LOOP
    IF r < 64 AND ahash_search_plan(company, r) = 'scan' THEN
      r := 64;
    END IF;
    RETURN QUERY
      SELECT s.id, s.company_id, s.meta_id, s.hash, s.distance, s.source
        FROM ahash_search(company, query, r, k) AS s
       WHERE s.distance > prev
       ORDER BY s.distance, s.id
       LIMIT need;
    GET DIAGNOSTICS got = ROW_COUNT;
    need := need - got;
    EXIT WHEN need <= 0 OR r >= 64;
    prev := r;
  END LOOP;
END
$fn$
"""


AHASH_SEARCH_BEFORE = """
CREATE FUNCTION ahash_search(company bigint, query bigint, max_distance integer,
                             max_rows integer DEFAULT NULL)
  RETURNS TABLE (id bigint, company_id bigint, meta_id bigint, hash bigint,
                 distance integer, source text)
  LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$
  SELECT h.id, h.company_id, h.meta_id, h.hash,
         bit_count((h.hash # query)::bit(64))::integer AS distance, h.source
    FROM image_hashes h
   WHERE (company IS NULL OR h.company_id = company)
     AND bit_count((h.hash # query)::bit(64)) <= max_distance
   ORDER BY distance, h.id
   LIMIT max_rows
$fn$
"""


def upgrade() -> None:
    for statement in (
        AHASH_CHUNK_MASKS_TABLE,
        FILL_AHASH_CHUNK_MASKS,
        'ALTER TABLE image_hashes ADD COLUMN c0 integer GENERATED ALWAYS AS ((((hash >> 48) & 65535))::integer) STORED NOT NULL',
        'ALTER TABLE image_hashes ADD COLUMN c1 integer GENERATED ALWAYS AS ((((hash >> 32) & 65535))::integer) STORED NOT NULL',
        'ALTER TABLE image_hashes ADD COLUMN c2 integer GENERATED ALWAYS AS ((((hash >> 16) & 65535))::integer) STORED NOT NULL',
        'ALTER TABLE image_hashes ADD COLUMN c3 integer GENERATED ALWAYS AS (((hash & 65535))::integer) STORED NOT NULL',
        'CREATE INDEX image_hashes_c0_idx ON image_hashes (c0, company_id) INCLUDE (hash, meta_id)',
        'CREATE INDEX image_hashes_c1_idx ON image_hashes (c1, company_id) INCLUDE (hash, meta_id)',
        'CREATE INDEX image_hashes_c2_idx ON image_hashes (c2, company_id) INCLUDE (hash, meta_id)',
        'CREATE INDEX image_hashes_c3_idx ON image_hashes (c3, company_id) INCLUDE (hash, meta_id)',
        'DROP FUNCTION ahash_search(bigint, bigint, integer, integer)',
        AHASH_CHUNK_RADII,
        AHASH_PROBES,
        AHASH_PROBE_COUNT,
        AHASH_COMPANY_ROWS_ESTIMATE,
        AHASH_SEARCH_PLAN,
        AHASH_SEARCH_INDEX,
        AHASH_SEARCH_SCAN,
        AHASH_SEARCH,
        AHASH_NEAREST,
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        'DROP FUNCTION ahash_nearest(bigint, bigint, integer)',
        'DROP FUNCTION ahash_search(bigint, bigint, integer, integer)',
        'DROP FUNCTION ahash_search_scan(bigint, bigint, integer, integer)',
        'DROP FUNCTION ahash_search_index(bigint, bigint, integer, integer)',
        'DROP FUNCTION ahash_search_plan(bigint, integer)',
        'DROP FUNCTION ahash_company_rows_estimate(bigint)',
        'DROP FUNCTION ahash_probe_count(integer)',
        'DROP FUNCTION ahash_probes(integer, integer)',
        'DROP FUNCTION ahash_chunk_radii(integer)',
        AHASH_SEARCH_BEFORE,
        'ALTER TABLE image_hashes DROP COLUMN c0',
        'ALTER TABLE image_hashes DROP COLUMN c1',
        'ALTER TABLE image_hashes DROP COLUMN c2',
        'ALTER TABLE image_hashes DROP COLUMN c3',
        'DROP TABLE ahash_chunk_masks',
    ):
        op.execute(statement)
