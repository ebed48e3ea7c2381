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

from math import comb

from alembic import op

from ahashdb.migrating import earlier_migration

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# How many 16-bit values lie within r bits of a given one, for r = 0..16.
_WITHIN = [sum(comb(16, w) for w in range(r + 1)) for r in range(17)]


def _radius(i: int) -> str:
    return (f"(max_distance + 1) / 4 + CASE WHEN {i} < (max_distance + 1) % 4 THEN 1 ELSE 0 END"
            " - 1")


AHASH_CHUNK_RADII = f"""
CREATE OR REPLACE FUNCTION ahash_chunk_radii(max_distance integer) RETURNS integer[]
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN ARRAY[{', '.join(_radius(i) for i in range(4))}]
"""

AHASH_PROBE_COUNT = f"""
CREATE OR REPLACE FUNCTION ahash_probe_count(max_distance integer) RETURNS bigint
  LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $fn$
DECLARE
  within CONSTANT bigint[] := '{{{",".join(map(str, _WITHIN))}}}';
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

# How many rows a company has, as the planner would guess it (pg_stats), or NULL without
# statistics.
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

ALG = "ahash_nearest.algorithm"
DISTANCE = "bit_count((x.hash # query)::bit(64))"


# The chunk values at exactly the step's new radius from the query's.
PROBES = ("ARRAY(SELECT chunk[i] # m.mask FROM ahash_chunk_masks m\n"
          "                     WHERE m.weight BETWEEN radius[i] AND radius[i])")


def _probe_step(any_array: bool = False) -> str:
    """Collect the rows whose chunk i equals one of ``probes``, within ``bound``: one index
    descent per probe (a join), or one index scan over them all (``= ANY``)."""
    branches = [] if any_array else [f"probes := {PROBES};"]
    for i in range(4):
        for scoped in (False, True):
            scope = " AND x.company_id = company" if scoped else ""
            source = (f"image_hashes x\n       WHERE x.c{i} = ANY({PROBES}) AND" if any_array else
                      f"unnest(probes) AS v(c) JOIN image_hashes x ON x.c{i} = v.c\n       WHERE")
            branches.append(
                f"{'IF' if i == 0 and not scoped else 'ELSIF'} i = {i + 1} AND company IS"
                f"{' NOT' if scoped else ''} NULL THEN\n"
                f"      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash)\n"
                f"        INTO n_cid, n_mid, n_xh\n"
                f"        FROM {source} x.algorithm = {ALG}{scope} AND {DISTANCE} <= bound;")
    return "\n    ".join(branches) + "\n    END IF;"


# The query's four chunks as an integer[] (the chunk columns' layout at this revision).
QUERY_CHUNKS = ("ARRAY[((query >> 48) & 65535)::integer, ((query >> 32) & 65535)::integer,\n"
                "                 ((query >> 16) & 65535)::integer, (query & 65535)::integer]")


# ahash_nearest's signature and settings, up to its DECLARE section.
NEAREST_SIGNATURE = """
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
"""

# Its first statements: what it does with NULL, negative and zero arguments.
NEAREST_CHECKS = f"""  IF query IS NULL OR k IS NULL OR {ALG} IS NULL THEN
    RETURN;
  END IF;
  IF k < 0 THEN
    RAISE EXCEPTION 'ahash_nearest: k must be 0 or more, got %', k USING ERRCODE = '22023';
  END IF;
  IF k = 0 THEN
    RETURN;
  END IF;
"""

# Its candidates so far (company, meta_id, hash) and those one step found.
NEAREST_CANDIDATES = """  c_cid bigint[] := '{}';
  c_mid bigint[] := '{}';
  c_xh bigint[] := '{}';
  n_cid bigint[];
  n_mid bigint[];
  n_xh bigint[];
"""

# A step's start: the next chunk's radius grows by one, and with it the distance covered.
NEAREST_WIDEN = """    i := i % 4 + 1;
    radius[i] := radius[i] + 1;
    covered := covered + 1;
    -- (the probes of one radius in one chunk: those within it minus those within one less)
    probed := probed + within[radius[i] + 1] - coalesce(within[radius[i]], 0);
"""

# Where probing would cost more than a scan, or past distance 23, the scan answers.
NEAREST_SCAN = ("    IF covered >= 24 OR (probed > 256 AND est IS NOT NULL"
                " AND est < probed * 8) THEN\n" f"""      RETURN QUERY
        SELECT s.id, s.company_id, s.meta_id, s.hash, s.distance, s.source
          FROM ahash_search_scan(company, query, 64, k, {ALG}) AS s;
      RETURN;
    END IF;
""")


def nearest_result(distinct: bool) -> str:
    """The final RETURN QUERY: the candidates (c_cid, c_mid, c_xh) within ``bound``, their
    heap rows, the k closest (ties by id); ``distinct`` when a candidate may repeat."""
    select = "SELECT DISTINCT" if distinct else "SELECT"
    return f"""  RETURN QUERY
    WITH cand AS (
      {select} u.cid, u.mid, u.xh FROM unnest(c_cid, c_mid, c_xh) AS u(cid, mid, xh)
       WHERE bit_count((u.xh # query)::bit(64)) <= bound)
    SELECT h.id, h.company_id, h.meta_id, h.hash,
           bit_count((h.hash # query)::bit(64))::integer, h.source
      FROM cand JOIN image_hashes h
        ON h.company_id = cand.cid AND h.meta_id = cand.mid AND h.algorithm = {ALG}
       AND h.hash = cand.xh
     ORDER BY 5, 1
     LIMIT k;
"""


# Exact top-k by incremental multi-index hashing. Each step widens one chunk's radius by
# one (round robin) and probes only the chunk values at exactly that new radius, so no
# value is probed twice. After a step with radii r, every row within
# covered = sum(r_i + 1) - 1 bits is a candidate (pigeonhole), so once k distinct
# candidates lie within `covered` the answer is known. Rows farther than the k-th
# candidate distance found so far (`bound`) can never enter the answer and are not kept.
# Where the probes would cost more than reading the company (the plan rule of
# ahash_search_plan), or past distance 23, it scans instead.
def nearest_sql(query_chunks: str = QUERY_CHUNKS, any_array: bool = False) -> str:
    """ahash_nearest's definition, with the query's chunks computed as given and the
    probes matched as :func:`_probe_step` says."""
    probes_variable = "" if any_array else "  probes integer[];\n"
    return f"""{NEAREST_SIGNATURE}DECLARE
  within CONSTANT bigint[] := '{{{",".join(map(str, _WITHIN))}}}';
  chunk integer[];
  radius integer[] := ARRAY[-1, -1, -1, -1];
  covered integer := -1;
  est double precision;
  probed bigint := 0;
  i integer := 0;
{probes_variable}  bound integer := 64;
  found bigint;
  kth integer;
{NEAREST_CANDIDATES}BEGIN
{NEAREST_CHECKS}  chunk := {query_chunks};
  est := ahash_company_rows_estimate(company);
  LOOP
{NEAREST_WIDEN}{NEAREST_SCAN}    {_probe_step(any_array)}
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
{nearest_result(distinct=True)}END
$fn$
"""


AHASH_NEAREST = nearest_sql()


def upgrade() -> None:
    for statement in (AHASH_CHUNK_RADII, AHASH_PROBE_COUNT, AHASH_COMPANY_ROWS_ESTIMATE,
                      AHASH_NEAREST):
        op.execute(statement)


def downgrade() -> None:
    old = earlier_migration(__file__, "0003_multi_index_hashing.py")
    for statement in (old.AHASH_CHUNK_RADII, old.AHASH_PROBE_COUNT,
                      old.AHASH_COMPANY_ROWS_ESTIMATE,
                      earlier_migration(__file__, "0005_hash_algorithms.py").AHASH_NEAREST):
        op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
