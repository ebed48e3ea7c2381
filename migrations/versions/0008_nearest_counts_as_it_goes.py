"""ahash_nearest keeps its candidates distinct as it finds them, and counts them as it goes.

Exact top-k widens one chunk's radius per step (0006) and, after every step, ran one more
query: DISTINCT over every candidate found so far, to learn how many lie within the
distance the steps cover and the k-th distance (the bound). That query cost about 0.25 ms a
step whatever its size, nearly a third of a top-10 at 5M rows. Now a step keeps a row only
if no other chunk's probes can have found it already: a step probes chunk i at exactly
radius r, so it finds each row at most once, and a row was found before iff some other
chunk j is within the radius j has been probed to. The candidates stay distinct without a
recheck, and a histogram of their distances, kept in PL/pgSQL, gives the count and the
k-th distance by arithmetic. The company's size estimate (for choosing a scan instead) is
read only when the probes grow past the point where a scan could win.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _revision(name: str) -> Any:
    """An earlier migration's module, whose definitions this one reuses."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"ahashdb_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_REVISION_0006 = _revision("0006_cheap_search_plan.py")
_REVISION_0007 = _revision("0007_spread_chunks.py")
DISTANCE = "bit_count((x.hash # query)::bit(64))"


def _seen_before(i: int) -> str:
    """SQL: row x lies within the radius some chunk other than i has been probed to (a
    chunk not probed yet has radius -1: no row is within it, and its chunk is not computed)."""
    return "\n              OR ".join(
        f"radius[{j + 1}] >= 0 AND bit_count(({_REVISION_0007.chunk_sql(j, 'x.hash')}"
        f" # chunk[{j + 1}])::bit(32)) <= radius[{j + 1}]" for j in range(4) if j != i)


def _probe_step(alg: str) -> str:
    """Collect the rows whose chunk i is at exactly radius[i] from the query's, within
    ``bound``, that no earlier step found, with their distances."""
    branches = []
    for i in range(4):
        for scoped in (False, True):
            scope = " AND x.company_id = company" if scoped else ""
            branches.append(
                f"{'IF' if i == 0 and not scoped else 'ELSIF'} i = {i + 1} AND company IS"
                f"{' NOT' if scoped else ''} NULL THEN\n"
                f"      SELECT array_agg(x.company_id), array_agg(x.meta_id), array_agg(x.hash),\n"
                f"             array_agg({DISTANCE}::integer)\n"
                f"        INTO n_cid, n_mid, n_xh, n_d\n"
                f"        FROM image_hashes x\n"
                f"       WHERE x.c{i} = ANY({_REVISION_0006.PROBES})\n"
                f"         AND x.algorithm = {alg}{scope} AND {DISTANCE} <= bound\n"
                f"         AND NOT ({_seen_before(i)});")
    return "\n    ".join(branches) + "\n    END IF;"


def nearest_sql(name: str = "ahash_nearest") -> str:
    """ahash_nearest's definition (``name`` lets a benchmark install it beside the old)."""
    alg = f"{name}.algorithm"
    within = ",".join(map(str, _REVISION_0006._WITHIN))
    return f"""
CREATE OR REPLACE FUNCTION {name}(company bigint, query bigint, k integer,
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
  within CONSTANT bigint[] := '{{{within}}}';
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
  c_cid bigint[] := '{{}}';
  c_mid bigint[] := '{{}}';
  c_xh bigint[] := '{{}}';
  n_cid bigint[];
  n_mid bigint[];
  n_xh bigint[];
  n_d integer[];
BEGIN
  IF query IS NULL OR k IS NULL OR {alg} IS NULL THEN
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
          FROM ahash_search_scan(company, query, 64, k, {alg}) AS s;
      RETURN;
    END IF;
    {_probe_step(alg)}
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
        ON h.company_id = cand.cid AND h.meta_id = cand.mid AND h.algorithm = {alg}
       AND h.hash = cand.xh
     ORDER BY 5, 1
     LIMIT k;
END
$fn$
"""


def upgrade() -> None:
    op.execute(nearest_sql())


def downgrade() -> None:
    op.execute(_REVISION_0006.nearest_sql("ahash_chunks(query)", any_array=True))
