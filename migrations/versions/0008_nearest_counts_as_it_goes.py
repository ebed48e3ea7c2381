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

from alembic import op

from ahashdb.migrating import earlier_migration

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


_REVISION_0006 = earlier_migration(__file__, "0006_cheap_search_plan.py")
_REVISION_0007 = earlier_migration(__file__, "0007_spread_chunks.py")
DISTANCE = "bit_count((x.hash # query)::bit(64))"


def _seen_before(i: int) -> str:
    """SQL: row x lies within the radius some chunk other than i has been probed to (a
    chunk not probed yet has radius -1: no row is within it, and its chunk is not computed)."""
    return "\n              OR ".join(
        f"radius[{j + 1}] >= 0 AND bit_count(({_REVISION_0007.chunk_sql(j, 'x.hash')}"
        f" # chunk[{j + 1}])::bit(32)) <= radius[{j + 1}]" for j in range(4) if j != i)


def _probe_step(algorithm: str) -> str:
    """Collect the rows whose chunk i is at exactly radius[i] from the query's, within
    ``bound``, that no earlier step found, with their distances; ``algorithm`` is the
    condition that keeps the rows of the asked algorithm."""
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
                f"         AND {algorithm}{scope} AND {DISTANCE} <= bound\n"
                f"         AND NOT ({_seen_before(i)});")
    return "\n    ".join(branches) + "\n    END IF;"


def nearest_sql(algorithm: str = f"x.algorithm = {_REVISION_0006.ALG}") -> str:
    """ahash_nearest's definition: 0006's signature, argument checks, steps and scan
    fallback, with candidates kept distinct as they are found and counted in ``hist``;
    ``algorithm`` is the steps' condition on the rows' algorithm."""
    r6 = _REVISION_0006
    within = ",".join(map(str, r6._WITHIN))
    return f"""{r6.NEAREST_SIGNATURE}DECLARE
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
{r6.NEAREST_CANDIDATES}  n_d integer[];
BEGIN
{r6.NEAREST_CHECKS}  chunk := ahash_chunks(query);
  LOOP
{r6.NEAREST_WIDEN}    IF probed > 256 AND NOT est_read THEN
      est := ahash_company_rows_estimate(company);
      est_read := true;
    END IF;
{r6.NEAREST_SCAN}    {_probe_step(algorithm)}
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
{r6.nearest_result(distinct=False)}END
$fn$
"""


def upgrade() -> None:
    op.execute(nearest_sql())


def downgrade() -> None:
    op.execute(_REVISION_0006.nearest_sql("ahash_chunks(query)", any_array=True))
