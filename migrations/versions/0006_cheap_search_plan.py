"""Choosing a search's plan costs microseconds, not a millisecond and a half.

ahash_search_plan decides between probing the chunk indexes and scanning the company. It
read the company's size from pg_stats through an SQL-standard function, which PostgreSQL
plans anew on every call (about 1.1 ms: the pg_stats view is large), and counted probes
with a query over ahash_chunk_masks (0.3 ms). Every ahash_search at T >= 8 paid both, and
ahash_nearest paid them twice per radius step. Now the count is arithmetic, the radii an
inlinable expression, and the size estimate PL/pgSQL, whose statement plans are cached
for the session; it finds the table by name when it runs (to_regclass), so it also
follows ``ahashdb partition``'s rebuilt table without being re-created. ahash_nearest
decides the plan once per radius step and calls the chosen search directly.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


AHASH_CHUNK_RADII = """
CREATE OR REPLACE FUNCTION ahash_chunk_radii(max_distance integer) RETURNS integer[]
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN ARRAY[(max_distance + 1) / 4 + CASE WHEN 0 < (max_distance + 1) % 4 THEN 1 ELSE 0 END - 1, (max_distance + 1) / 4 + CASE WHEN 1 < (max_distance + 1) % 4 THEN 1 ELSE 0 END - 1, (max_distance + 1) / 4 + CASE WHEN 2 < (max_distance + 1) % 4 THEN 1 ELSE 0 END - 1, (max_distance + 1) / 4 + CASE WHEN 3 < (max_distance + 1) % 4 THEN 1 ELSE 0 END - 1]
"""


AHASH_PROBE_COUNT = """
CREATE OR REPLACE FUNCTION ahash_probe_count(max_distance integer) RETURNS bigint
  LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $fn$
DECLARE
  within CONSTANT bigint[] := '{1,17,137,697,2517,6885,14893,26333,39203,50643,58651,63019,64839,65399,65519,65535,65536}';
  total bigint := 0;
  r integer;
BEGIN
  FOREACH r IN ARRAY ahash_chunk_radii(max_distance) LOOP
    IF r >= 0 THEN
      total := total + within[least(r, 16) + 1];
    END IF;
  END LOOP;
  RETURN total;
END
$fn$
"""


AHASH_COMPANY_ROWS_ESTIMATE = """
CREATE OR REPLACE FUNCTION ahash_company_rows_estimate(company bigint)
  RETURNS double precision
  LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$
DECLARE
  tbl regclass := to_regclass('image_hashes');
  tuples real;
  nsp text;
  rel text;
  vals bigint[];
  freqs real[];
  distinct_vals real;
  pos integer;
BEGIN
  SELECT c.reltuples, c.relnamespace::regnamespace::text, c.relname INTO tuples, nsp, rel
    FROM pg_class c WHERE c.oid = tbl;
  IF tuples IS NULL OR tuples < 0 THEN
    RETURN NULL;
  END IF;
  IF company IS NULL THEN
    RETURN tuples;
  END IF;
  -- (Joining pg_stats to pg_class here instead makes the view's plan 5x slower.)
  SELECT s.most_common_vals::text::bigint[], s.most_common_freqs, s.n_distinct
    INTO vals, freqs, distinct_vals
    FROM pg_stats s
   WHERE s.schemaname = nsp AND s.tablename = rel AND s.attname = 'company_id';
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  pos := array_position(vals, company);
  IF pos IS NOT NULL THEN
    RETURN tuples * freqs[pos];
  END IF;
  RETURN tuples * (1 - coalesce((SELECT sum(f) FROM unnest(freqs) AS f), 0))
         / greatest(CASE WHEN distinct_vals < 0 THEN -distinct_vals * tuples
                         ELSE distinct_vals END - coalesce(cardinality(freqs), 0), 1);
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
  probes integer[];
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
  chunk := ARRAY[((query >> 48) & 65535)::integer, ((query >> 32) & 65535)::integer,
                 ((query >> 16) & 65535)::integer, (query & 65535)::integer];
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
    probes := ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m
                     WHERE m.weight BETWEEN radius[i] AND radius[i]);
    IF i = 1 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM unnest(probes) AS v(c) JOIN image_hashes x ON x.c0 = v.c
       WHERE x.algorithm = ahash_nearest.algorithm AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 1 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM unnest(probes) AS v(c) JOIN image_hashes x ON x.c0 = v.c
       WHERE x.algorithm = ahash_nearest.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 2 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM unnest(probes) AS v(c) JOIN image_hashes x ON x.c1 = v.c
       WHERE x.algorithm = ahash_nearest.algorithm AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 2 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM unnest(probes) AS v(c) JOIN image_hashes x ON x.c1 = v.c
       WHERE x.algorithm = ahash_nearest.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 3 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM unnest(probes) AS v(c) JOIN image_hashes x ON x.c2 = v.c
       WHERE x.algorithm = ahash_nearest.algorithm AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 3 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM unnest(probes) AS v(c) JOIN image_hashes x ON x.c2 = v.c
       WHERE x.algorithm = ahash_nearest.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 4 AND company IS NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM unnest(probes) AS v(c) JOIN image_hashes x ON x.c3 = v.c
       WHERE x.algorithm = ahash_nearest.algorithm AND bit_count((x.hash # query)::bit(64)) <= bound;
    ELSIF i = 4 AND company IS NOT NULL THEN
      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)
        INTO n_cid, n_mid, n_xh
        FROM unnest(probes) AS v(c) JOIN image_hashes x ON x.c3 = v.c
       WHERE x.algorithm = ahash_nearest.algorithm AND x.company_id = company AND bit_count((x.hash # query)::bit(64)) <= bound;
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


AHASH_CHUNK_RADII_BEFORE = """
CREATE OR REPLACE FUNCTION ahash_chunk_radii(max_distance integer) RETURNS integer[]
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN ARRAY(
    SELECT (max_distance + 1) / 4 + CASE WHEN i < (max_distance + 1) % 4 THEN 1 ELSE 0 END - 1
      FROM generate_series(0, 3) AS i ORDER BY i)
"""


AHASH_PROBE_COUNT_BEFORE = """
CREATE OR REPLACE FUNCTION ahash_probe_count(max_distance integer) RETURNS bigint
  LANGUAGE sql STABLE STRICT PARALLEL SAFE
  RETURN (SELECT count(*) FROM unnest(ahash_chunk_radii(max_distance)) AS r
            JOIN ahash_chunk_masks m ON m.weight <= r)
"""


AHASH_COMPANY_ROWS_ESTIMATE_BEFORE = """
CREATE OR REPLACE FUNCTION ahash_company_rows_estimate(company bigint) RETURNS double precision
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


AHASH_NEAREST_BEFORE = """
CREATE OR REPLACE FUNCTION ahash_nearest(company bigint, query bigint, k integer,
                              algorithm ahash_algorithm DEFAULT 'ahash')
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
  IF query IS NULL OR k IS NULL OR ahash_nearest.algorithm IS NULL THEN
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
        FROM ahash_search(company, query, r, k, ahash_nearest.algorithm) AS s
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


def upgrade() -> None:
    for statement in (
        AHASH_CHUNK_RADII,
        AHASH_PROBE_COUNT,
        AHASH_COMPANY_ROWS_ESTIMATE,
        AHASH_NEAREST,
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        AHASH_CHUNK_RADII_BEFORE,
        AHASH_PROBE_COUNT_BEFORE,
        AHASH_COMPANY_ROWS_ESTIMATE_BEFORE,
        AHASH_NEAREST_BEFORE,
    ):
        op.execute(statement)
