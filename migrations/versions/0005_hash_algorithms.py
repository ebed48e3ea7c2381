"""pHash, dHash and wHash beside aHash: an algorithm per row, and the versions that made it.

Every row gets ``algorithm`` (enum ``ahash_algorithm``; existing rows are aHashes) and
``hasher``, the ``ahash_hashers`` row naming the imagehash and Pillow versions (and hash
size) that computed it, NULL when ahashdb did not compute it (hashes imported from a file
or from Milvus, and rows stored before this revision).

The algorithm joins the natural key (one object may have one hash per algorithm) and the
chunk indexes' keys, between the chunk and company_id, where the 4-byte enum fills the
alignment padding after the 4-byte chunk: the index tuples stay 40 bytes. A search names
its algorithm (default ``'ahash'``, so earlier calls keep their meaning) and only ever
compares hashes of that algorithm, through the same index descents as before.

No foreign key from ``hasher`` to ``ahash_hashers``: a per-row check would slow every
COPY; ahashdb writes only ids it has just looked up or made.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from ahashdb.migrating import earlier_migration

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


AHASH_HASHERS_TABLE = """
CREATE TABLE ahash_hashers (
  id smallint GENERATED ALWAYS AS IDENTITY,
  algorithm ahash_algorithm NOT NULL,
  hash_size smallint NOT NULL,
  imagehash_version text NOT NULL,
  pillow_version text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ahash_hashers_pkey PRIMARY KEY (id),
  CONSTRAINT ahash_hashers_key UNIQUE (algorithm, hash_size, imagehash_version, pillow_version)
)
"""


AHASH_SEARCH_INDEX = """
CREATE FUNCTION ahash_search_index(company bigint, query bigint, max_distance integer,
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


AHASH_SEARCH_SCAN = """
CREATE FUNCTION ahash_search_scan(company bigint, query bigint, max_distance integer,
                                  max_rows integer, algorithm ahash_algorithm)
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
$fn$
"""


AHASH_SEARCH = """
CREATE FUNCTION ahash_search(company bigint, query bigint, max_distance integer,
                             max_rows integer DEFAULT NULL,
                             algorithm ahash_algorithm DEFAULT 'ahash')
  RETURNS TABLE (id bigint, company_id bigint, meta_id bigint, hash bigint,
                 distance integer, source text)
  LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$
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
  IF ahash_search_plan(company, max_distance) = 'scan' THEN
    RETURN QUERY SELECT * FROM ahash_search_scan(company, query, max_distance, max_rows,
                                                 algorithm);
  ELSE
    RETURN QUERY SELECT * FROM ahash_search_index(company, query, max_distance, max_rows,
                                                  algorithm);
  END IF;
END
$fn$
"""


AHASH_NEAREST = """
CREATE FUNCTION ahash_nearest(company bigint, query bigint, k integer,
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


COMMENT_IMAGE_HASHES = """COMMENT ON TABLE image_hashes IS '64-bit perceptual hashes (imagehash average_hash, phash, dhash, whash) as signed BIGINT, per company and object'"""


REFUSE_OTHER_ALGORITHMS = """
DO $$
DECLARE n bigint;
BEGIN
  SELECT count(*) INTO n FROM image_hashes WHERE algorithm <> 'ahash';
  IF n > 0 THEN
    RAISE EXCEPTION '% rows of image_hashes are pHash, dHash or wHash, which revision % %',
      n, '0004 cannot store; delete them first',
      '(DELETE FROM image_hashes WHERE algorithm <> ''ahash'')' USING ERRCODE = '55000';
  END IF;
END
$$"""


def upgrade() -> None:
    for statement in (
        "CREATE TYPE ahash_algorithm AS ENUM ('ahash', 'phash', 'dhash', 'whash')",
        AHASH_HASHERS_TABLE,
        "ALTER TABLE image_hashes ADD COLUMN algorithm ahash_algorithm NOT NULL DEFAULT 'ahash', ADD COLUMN hasher smallint",
        'ALTER TABLE image_hashes DROP CONSTRAINT image_hashes_pkey',
        'ALTER TABLE image_hashes ADD CONSTRAINT image_hashes_pkey PRIMARY KEY (company_id, meta_id, algorithm, hash)',
        'DROP INDEX IF EXISTS image_hashes_c0_idx',
        'CREATE INDEX image_hashes_c0_idx ON image_hashes (c0, algorithm, company_id) INCLUDE (hash, meta_id)',
        'DROP INDEX IF EXISTS image_hashes_c1_idx',
        'CREATE INDEX image_hashes_c1_idx ON image_hashes (c1, algorithm, company_id) INCLUDE (hash, meta_id)',
        'DROP INDEX IF EXISTS image_hashes_c2_idx',
        'CREATE INDEX image_hashes_c2_idx ON image_hashes (c2, algorithm, company_id) INCLUDE (hash, meta_id)',
        'DROP INDEX IF EXISTS image_hashes_c3_idx',
        'CREATE INDEX image_hashes_c3_idx ON image_hashes (c3, algorithm, company_id) INCLUDE (hash, meta_id)',
        'DROP FUNCTION ahash_nearest(bigint, bigint, integer)',
        'DROP FUNCTION ahash_search(bigint, bigint, integer, integer)',
        'DROP FUNCTION ahash_search_scan(bigint, bigint, integer, integer)',
        'DROP FUNCTION ahash_search_index(bigint, bigint, integer, integer)',
        AHASH_SEARCH_INDEX,
        AHASH_SEARCH_SCAN,
        AHASH_SEARCH,
        AHASH_NEAREST,
        COMMENT_IMAGE_HASHES,
    ):
        op.execute(statement)


def downgrade() -> None:
    r0003 = earlier_migration(__file__, "0003_multi_index_hashing.py")
    for statement in (
        REFUSE_OTHER_ALGORITHMS,
        'DROP FUNCTION ahash_nearest(bigint, bigint, integer, ahash_algorithm)',
        'DROP FUNCTION ahash_search(bigint, bigint, integer, integer, ahash_algorithm)',
        'DROP FUNCTION ahash_search_scan(bigint, bigint, integer, integer, ahash_algorithm)',
        'DROP FUNCTION ahash_search_index(bigint, bigint, integer, integer, ahash_algorithm)',
        r0003.AHASH_SEARCH_INDEX,
        r0003.AHASH_SEARCH_SCAN,
        r0003.AHASH_SEARCH,
        r0003.AHASH_NEAREST,
        'ALTER TABLE image_hashes DROP CONSTRAINT image_hashes_pkey',
        'ALTER TABLE image_hashes ADD CONSTRAINT image_hashes_pkey PRIMARY KEY (company_id, meta_id, hash)',
        'DROP INDEX IF EXISTS image_hashes_c0_idx',
        'CREATE INDEX image_hashes_c0_idx ON image_hashes (c0, company_id) INCLUDE (hash, meta_id)',
        'DROP INDEX IF EXISTS image_hashes_c1_idx',
        'CREATE INDEX image_hashes_c1_idx ON image_hashes (c1, company_id) INCLUDE (hash, meta_id)',
        'DROP INDEX IF EXISTS image_hashes_c2_idx',
        'CREATE INDEX image_hashes_c2_idx ON image_hashes (c2, company_id) INCLUDE (hash, meta_id)',
        'DROP INDEX IF EXISTS image_hashes_c3_idx',
        'CREATE INDEX image_hashes_c3_idx ON image_hashes (c3, company_id) INCLUDE (hash, meta_id)',
        'ALTER TABLE image_hashes DROP COLUMN hasher, DROP COLUMN algorithm',
        'DROP TABLE ahash_hashers',
        'DROP TYPE ahash_algorithm',
        "COMMENT ON TABLE image_hashes IS '64-bit aHashes (imagehash.average_hash) as signed BIGINT, per company and object'",
    ):
        op.execute(statement)
