-- ahashdb: the whole SQL surface at schema revision 0017, as the migrations leave it.
-- Generated from a migrated database by `python -m ahashdb.sqlsurface`; a test checks it.
-- Read it; do not run it: `ahashdb migrate` creates all of this (and upgrades older schemas).

-- Types

CREATE TYPE ahash_algorithm AS ENUM ('ahash', 'phash', 'dhash', 'whash');

-- Functions the tables' generated columns and other functions build on (immutable)

CREATE OR REPLACE FUNCTION public.ahash_algorithm_code(algorithm ahash_algorithm)
 RETURNS smallint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
RETURN CASE algorithm WHEN 'ahash'::ahash_algorithm THEN 0 WHEN 'phash'::ahash_algorithm THEN 1 WHEN 'dhash'::ahash_algorithm THEN 2 WHEN 'whash'::ahash_algorithm THEN 3 ELSE NULL::integer END;

CREATE OR REPLACE FUNCTION public.ahash_chunk_radii(max_distance integer)
 RETURNS integer[]
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
RETURN ARRAY[((((max_distance + 1) / 4) + CASE WHEN (0 < ((max_distance + 1) % 4)) THEN 1 ELSE 0 END) - 1), ((((max_distance + 1) / 4) + CASE WHEN (1 < ((max_distance + 1) % 4)) THEN 1 ELSE 0 END) - 1), ((((max_distance + 1) / 4) + CASE WHEN (2 < ((max_distance + 1) % 4)) THEN 1 ELSE 0 END) - 1), ((((max_distance + 1) / 4) + CASE WHEN (3 < ((max_distance + 1) % 4)) THEN 1 ELSE 0 END) - 1)];

CREATE OR REPLACE FUNCTION public.ahash_chunks(value bigint)
 RETURNS integer[]
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
RETURN ARRAY[(((((((value << 9) & (34816)::bigint) | ((value >> 6) & (17544)::bigint)) | ((value >> 25) & (8772)::bigint)) | ((value >> 40) & (4386)::bigint)) | ((value >> 59) & (17)::bigint)))::integer, (((((((value << 2) & (17544)::bigint) | ((value >> 17) & (8772)::bigint)) | ((value >> 32) & (4386)::bigint)) | ((value >> 40) & (34816)::bigint)) | ((value >> 58) & (17)::bigint)))::integer, (((((((value << 11) & (34816)::bigint) | ((value >> 8) & (17544)::bigint)) | ((value >> 23) & (8772)::bigint)) | ((value >> 42) & (4386)::bigint)) | ((value >> 57) & (17)::bigint)))::integer, ((((((value & (17544)::bigint) | ((value >> 15) & (8772)::bigint)) | ((value >> 24) & (34816)::bigint)) | ((value >> 41) & (4386)::bigint)) | ((value >> 56) & (17)::bigint)))::integer];

CREATE OR REPLACE FUNCTION public.ahash_distance(a bigint, b bigint)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
RETURN (bit_count(((a # b))::bit(64)))::integer;

CREATE OR REPLACE FUNCTION public.ahash_invalid_hex(t text)
 RETURNS bigint
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
BEGIN
  RAISE EXCEPTION 'invalid aHash hex %: expected exactly 16 hex digits (0-9, a-f)', quote_literal(t)
    USING ERRCODE = '22P02';
END
$function$;

CREATE OR REPLACE FUNCTION public.ahash_from_hex(t text)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN (t IS NULL) THEN NULL::bigint WHEN (t ~ '^[0-9A-Fa-f]{16}$'::text) THEN ((('x'::text || t))::bit(64))::bigint ELSE ahash_invalid_hex(t) END;

CREATE OR REPLACE FUNCTION public.ahash_probe_count(max_distance integer)
 RETURNS bigint
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.ahash_to_hex(h bigint)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
RETURN lpad(to_hex(h), 16, '0'::text);

-- Tables and their indexes

CREATE TABLE ahash_api_keys (
  id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  company_id bigint,
  name text,
  key_hash bytea NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  revoked_at timestamp with time zone,
  CONSTRAINT ahash_api_keys_pkey PRIMARY KEY (id),
  CONSTRAINT ahash_api_keys_key_hash_key UNIQUE (key_hash)
);

CREATE UNLOGGED TABLE ahash_bindings (
  pid integer NOT NULL,
  xact bigint NOT NULL,
  company_id bigint NOT NULL,
  CONSTRAINT ahash_bindings_pkey PRIMARY KEY (pid)
);

CREATE TABLE ahash_chunk_masks (
  weight smallint NOT NULL,
  mask integer NOT NULL,
  CONSTRAINT ahash_chunk_masks_pkey PRIMARY KEY (weight, mask)
);

CREATE TABLE ahash_decisions (
  company_id bigint NOT NULL,
  id_a bigint NOT NULL,
  id_b bigint NOT NULL,
  decision text NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT ahash_decisions_kind CHECK ((decision = 'not_duplicates'::text)),
  CONSTRAINT ahash_decisions_order CHECK ((id_a < id_b)),
  CONSTRAINT ahash_decisions_pkey PRIMARY KEY (company_id, id_a, id_b)
);

CREATE TABLE ahash_hashers (
  id smallint GENERATED ALWAYS AS IDENTITY NOT NULL,
  algorithm ahash_algorithm NOT NULL,
  hash_size smallint NOT NULL,
  imagehash_version text NOT NULL,
  pillow_version text NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  decode text DEFAULT 'full'::text NOT NULL,
  CONSTRAINT ahash_hashers_decode CHECK ((decode = ANY (ARRAY['full'::text, 'reduced'::text]))),
  CONSTRAINT ahash_hashers_pkey PRIMARY KEY (id),
  CONSTRAINT ahash_hashers_key UNIQUE (algorithm, hash_size, imagehash_version, pillow_version, decode)
);

CREATE TABLE ahash_sources (
  company_id bigint NOT NULL,
  algorithm ahash_algorithm NOT NULL,
  source text NOT NULL,
  marker text NOT NULL,
  meta_id bigint NOT NULL,
  updated_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT ahash_sources_pkey PRIMARY KEY (company_id, algorithm, source)
);

CREATE TABLE image_hashes (
  id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  company_id bigint NOT NULL,
  meta_id bigint NOT NULL,
  hash bigint NOT NULL,
  source text,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  algorithm ahash_algorithm DEFAULT 'ahash'::ahash_algorithm NOT NULL,
  hasher smallint,
  c0 integer GENERATED ALWAYS AS ((((((((hash << 9) & (34816)::bigint) | ((hash >> 6) & (17544)::bigint)) | ((hash >> 25) & (8772)::bigint)) | ((hash >> 40) & (4386)::bigint)) | ((hash >> 59) & (17)::bigint)))::integer) STORED NOT NULL,
  c1 integer GENERATED ALWAYS AS ((((((((hash << 2) & (17544)::bigint) | ((hash >> 17) & (8772)::bigint)) | ((hash >> 32) & (4386)::bigint)) | ((hash >> 40) & (34816)::bigint)) | ((hash >> 58) & (17)::bigint)))::integer) STORED NOT NULL,
  c2 integer GENERATED ALWAYS AS ((((((((hash << 11) & (34816)::bigint) | ((hash >> 8) & (17544)::bigint)) | ((hash >> 23) & (8772)::bigint)) | ((hash >> 42) & (4386)::bigint)) | ((hash >> 57) & (17)::bigint)))::integer) STORED NOT NULL,
  c3 integer GENERATED ALWAYS AS (((((((hash & (17544)::bigint) | ((hash >> 15) & (8772)::bigint)) | ((hash >> 24) & (34816)::bigint)) | ((hash >> 41) & (4386)::bigint)) | ((hash >> 56) & (17)::bigint)))::integer) STORED NOT NULL,
  algorithm_code smallint GENERATED ALWAYS AS (ahash_algorithm_code(algorithm)) STORED NOT NULL,
  CONSTRAINT image_hashes_pkey PRIMARY KEY (company_id, meta_id, algorithm, hash)
);
COMMENT ON TABLE image_hashes IS '64-bit perceptual hashes (imagehash average_hash, phash, dhash, whash) as signed BIGINT, per company and object';
CREATE INDEX image_hashes_c0_idx ON public.image_hashes USING btree (c0, algorithm_code, company_id) INCLUDE (hash, meta_id) WITH (fillfactor='80');
CREATE INDEX image_hashes_c1_idx ON public.image_hashes USING btree (c1, algorithm_code, company_id) INCLUDE (hash, meta_id) WITH (fillfactor='80');
CREATE INDEX image_hashes_c2_idx ON public.image_hashes USING btree (c2, algorithm_code, company_id) INCLUDE (hash, meta_id) WITH (fillfactor='80');
CREATE INDEX image_hashes_c3_idx ON public.image_hashes USING btree (c3, algorithm_code, company_id) INCLUDE (hash, meta_id) WITH (fillfactor='80');

-- Functions that read the tables: the searches and the tenant binding

CREATE OR REPLACE FUNCTION public.ahash_bound_company()
 RETURNS bigint
 LANGUAGE sql
 STABLE PARALLEL RESTRICTED SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
RETURN (SELECT b.company_id FROM ahash_bindings b WHERE ((b.pid = pg_backend_pid()) AND (b.xact = ((pg_current_xact_id_if_assigned())::text)::bigint)));

CREATE OR REPLACE FUNCTION public.ahash_company_rows_estimate(company bigint)
 RETURNS double precision
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.ahash_search_scan(company bigint, query bigint, max_distance integer, max_rows integer, algorithm ahash_algorithm)
 RETURNS TABLE(id bigint, company_id bigint, meta_id bigint, hash bigint, distance integer, source text)
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
AS $function$
#variable_conflict use_column
BEGIN
  IF company IS NULL THEN
    RETURN QUERY
      SELECT x.id, x.company_id, x.meta_id, x.hash,
             bit_count((x.hash # query)::bit(64))::integer, x.source
        FROM image_hashes x
       WHERE x.algorithm = ahash_search_scan.algorithm
         AND bit_count((x.hash # query)::bit(64)) <= max_distance
       ORDER BY 5, 1
       LIMIT max_rows;
  ELSE
    RETURN QUERY
      SELECT x.id, x.company_id, x.meta_id, x.hash,
             bit_count((x.hash # query)::bit(64))::integer, x.source
        FROM image_hashes x
       WHERE x.company_id = company AND x.algorithm = ahash_search_scan.algorithm
         AND bit_count((x.hash # query)::bit(64)) <= max_distance
       ORDER BY 5, 1
       LIMIT max_rows;
  END IF;
END
$function$;

CREATE OR REPLACE FUNCTION public.ahash_nearest(company bigint, query bigint, k integer, algorithm ahash_algorithm DEFAULT 'ahash'::ahash_algorithm, max_distance integer DEFAULT 64)
 RETURNS TABLE(id bigint, company_id bigint, meta_id bigint, hash bigint, distance integer, source text)
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
 SET enable_bitmapscan TO 'off'
AS $function$
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
  -- no farther row can be in the answer: max_distance, then the k-th distance found
  bound integer := least(max_distance, 64);
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
  IF query IS NULL OR k IS NULL OR ahash_nearest.algorithm IS NULL OR max_distance IS NULL
  THEN
    RETURN;
  END IF;
  IF k < 0 THEN
    RAISE EXCEPTION 'ahash_nearest: k must be 0 or more, got %', k USING ERRCODE = '22023';
  END IF;
  IF max_distance < 0 THEN
    RAISE EXCEPTION 'ahash_nearest: max_distance must be 0 or more, got %', max_distance
      USING ERRCODE = '22023';
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
          FROM ahash_search_scan(company, query, bound, k, ahash_nearest.algorithm) AS s;
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
      bound := least(bound, d);
    END IF;
    -- every row within `covered` has been found (pigeonhole): once that reaches the bound,
    -- the rows within the bound are all there, and the k nearest of them are the answer
    EXIT WHEN bound <= covered;
  END LOOP;
  IF company IS NULL THEN
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
  ELSE
    RETURN QUERY
      WITH cand AS (
        SELECT u.cid, u.mid, u.xh FROM unnest(c_cid, c_mid, c_xh) AS u(cid, mid, xh)
         WHERE bit_count((u.xh # query)::bit(64)) <= bound)
      SELECT h.id, h.company_id, h.meta_id, h.hash,
             bit_count((h.hash # query)::bit(64))::integer, h.source
        FROM cand JOIN image_hashes h
          ON h.company_id = company AND h.meta_id = cand.mid AND h.algorithm = ahash_nearest.algorithm
         AND h.hash = cand.xh
       ORDER BY 5, 1
       LIMIT k;
  END IF;
END
$function$;

CREATE OR REPLACE FUNCTION public.ahash_search_index(company bigint, query bigint, max_distance integer, max_rows integer, algorithm ahash_algorithm)
 RETURNS TABLE(id bigint, company_id bigint, meta_id bigint, hash bigint, distance integer, source text)
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
 SET enable_bitmapscan TO 'off'
 SET max_parallel_workers_per_gather TO '0'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.ahash_search_plan(company bigint, max_distance integer)
 RETURNS text
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.ahash_search(company bigint, query bigint, max_distance integer, max_rows integer DEFAULT NULL::integer, algorithm ahash_algorithm DEFAULT 'ahash'::ahash_algorithm)
 RETURNS TABLE(id bigint, company_id bigint, meta_id bigint, hash bigint, distance integer, source text)
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
AS $function$
BEGIN
  IF query IS NULL OR max_distance IS NULL OR algorithm IS NULL THEN
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
  -- With a row limit the answer is the max_rows nearest rows within max_distance, which
  -- ahash_nearest finds radius by radius, stopping once it holds them: the work follows the
  -- answer, not how many rows lie within max_distance.
  IF max_rows IS NOT NULL THEN
    RETURN QUERY SELECT * FROM ahash_nearest(company, query, max_rows, algorithm,
                                             max_distance);
  ELSIF ahash_search_plan(company, max_distance) = 'scan' THEN
    RETURN QUERY SELECT * FROM ahash_search_scan(company, query, max_distance, max_rows,
                                                 algorithm);
  ELSE
    RETURN QUERY SELECT * FROM ahash_search_index(company, query, max_distance, max_rows,
                                                  algorithm);
  END IF;
END
$function$;

CREATE OR REPLACE FUNCTION public.ahash_insert_if_new(company bigint, query bigint, max_distance integer, meta bigint, src text DEFAULT NULL::text, algorithm ahash_algorithm DEFAULT 'ahash'::ahash_algorithm, hasher smallint DEFAULT NULL::smallint, max_matches integer DEFAULT 100)
 RETURNS TABLE(stored boolean, id bigint, company_id bigint, meta_id bigint, hash bigint, distance integer, source text)
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
  scope text := format('ahash_insert_if_new %s %s', company, algorithm);
  i integer;
  j integer;
BEGIN
  IF company IS NULL OR query IS NULL OR meta IS NULL OR max_distance IS NULL THEN
    RAISE EXCEPTION 'ahash_insert_if_new: company, query, max_distance and meta are required'
      USING ERRCODE = '22004';
  END IF;
  IF max_distance < 0 OR max_distance > 64 THEN
    RAISE EXCEPTION 'ahash_insert_if_new: max_distance must be 0 to 64, got %', max_distance
      USING ERRCODE = '22023';
  END IF;
  IF max_distance <= 11 THEN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended(scope, 0));
    FOR i IN 0 .. 15 LOOP
      FOR j IN i + 1 .. (i / 4) * 4 + 3 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(
          format('%s pair %s %s %s %s', scope, i, j, (query >> (4 * i)) & 15,
                 (query >> (4 * j)) & 15), 0));
      END LOOP;
    END LOOP;
  ELSE
    PERFORM pg_advisory_xact_lock(hashtextextended(scope, 0));
  END IF;
  -- A new statement: it sees every row committed by the calls this one waited for.
  RETURN QUERY SELECT false, s.id, s.company_id, s.meta_id, s.hash, s.distance, s.source
                 FROM ahash_search(company, query, max_distance, max_matches, algorithm) s;
  IF FOUND THEN
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO image_hashes AS h (company_id, meta_id, algorithm, hash, source, hasher)
    VALUES (company, meta, algorithm, query, src, hasher)
    ON CONFLICT (company_id, meta_id, algorithm, hash) DO NOTHING
    RETURNING true, h.id, h.company_id, h.meta_id, h.hash, 0, h.source;
END
$function$;

CREATE OR REPLACE FUNCTION public.ahash_login(key text, company bigint DEFAULT NULL::bigint)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
  known boolean;
  own bigint;
BEGIN
  SELECT true, k.company_id INTO known, own FROM public.ahash_api_keys k
   WHERE k.key_hash = sha256(convert_to(key, 'UTF8')) AND k.revoked_at IS NULL;
  IF known IS NULL THEN
    RAISE EXCEPTION 'ahash_login: unknown or revoked key' USING ERRCODE = '28000';
  END IF;
  IF own IS NULL AND company IS NULL THEN
    RAISE EXCEPTION 'ahash_login: an operator''s key needs the company to work on'
      USING ERRCODE = '22004';
  END IF;
  IF own IS NOT NULL AND company IS NOT NULL AND company <> own THEN
    RAISE EXCEPTION 'ahash_login: this key is not company %''s', company
      USING ERRCODE = '42501';
  END IF;
  company := coalesce(own, company);
  INSERT INTO public.ahash_bindings (pid, xact, company_id)
  VALUES (pg_backend_pid(), pg_current_xact_id()::text::bigint, company)
  ON CONFLICT (pid) DO UPDATE SET xact = EXCLUDED.xact, company_id = EXCLUDED.company_id;
  RETURN company;
END
$function$;

CREATE OR REPLACE FUNCTION public.ahash_probes(chunk integer, radius integer)
 RETURNS integer[]
 LANGUAGE sql
 STABLE PARALLEL SAFE STRICT
RETURN ARRAY(SELECT (ahash_probes.chunk # m.mask) FROM ahash_chunk_masks m WHERE ((m.weight >= 0) AND (m.weight <= ahash_probes.radius)));

-- Row-level security is not part of the migrations: `ahashdb rls enable` runs
-- ALTER TABLE image_hashes ENABLE ROW LEVEL SECURITY;
-- ALTER TABLE image_hashes NO FORCE ROW LEVEL SECURITY;
-- DROP POLICY IF EXISTS ahashdb_tenant ON image_hashes;
-- CREATE POLICY ahashdb_tenant ON image_hashes USING (company_id = NULLIF(current_setting('ahashdb.company_id', true), '')::bigint) WITH CHECK (company_id = NULLIF(current_setting('ahashdb.company_id', true), '')::bigint);
-- ALTER TABLE ahash_decisions ENABLE ROW LEVEL SECURITY;
-- ALTER TABLE ahash_decisions NO FORCE ROW LEVEL SECURITY;
-- DROP POLICY IF EXISTS ahashdb_tenant ON ahash_decisions;
-- CREATE POLICY ahashdb_tenant ON ahash_decisions USING (company_id = NULLIF(current_setting('ahashdb.company_id', true), '')::bigint) WITH CHECK (company_id = NULLIF(current_setting('ahashdb.company_id', true), '')::bigint);
-- ALTER TABLE ahash_sources ENABLE ROW LEVEL SECURITY;
-- ALTER TABLE ahash_sources NO FORCE ROW LEVEL SECURITY;
-- DROP POLICY IF EXISTS ahashdb_tenant ON ahash_sources;
-- CREATE POLICY ahashdb_tenant ON ahash_sources USING (company_id = NULLIF(current_setting('ahashdb.company_id', true), '')::bigint) WITH CHECK (company_id = NULLIF(current_setting('ahashdb.company_id', true), '')::bigint);

-- and `ahashdb rls enable --strict` runs
-- ALTER TABLE image_hashes ENABLE ROW LEVEL SECURITY;
-- ALTER TABLE image_hashes FORCE ROW LEVEL SECURITY;
-- DROP POLICY IF EXISTS ahashdb_tenant ON image_hashes;
-- CREATE POLICY ahashdb_tenant ON image_hashes USING (company_id = (SELECT ahash_bound_company())) WITH CHECK (company_id = (SELECT ahash_bound_company()));
-- ALTER TABLE ahash_decisions ENABLE ROW LEVEL SECURITY;
-- ALTER TABLE ahash_decisions FORCE ROW LEVEL SECURITY;
-- DROP POLICY IF EXISTS ahashdb_tenant ON ahash_decisions;
-- CREATE POLICY ahashdb_tenant ON ahash_decisions USING (company_id = (SELECT ahash_bound_company())) WITH CHECK (company_id = (SELECT ahash_bound_company()));
-- ALTER TABLE ahash_sources ENABLE ROW LEVEL SECURITY;
-- ALTER TABLE ahash_sources FORCE ROW LEVEL SECURITY;
-- DROP POLICY IF EXISTS ahashdb_tenant ON ahash_sources;
-- CREATE POLICY ahashdb_tenant ON ahash_sources USING (company_id = (SELECT ahash_bound_company())) WITH CHECK (company_id = (SELECT ahash_bound_company()));
