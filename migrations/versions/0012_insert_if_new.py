"""Atomic check-and-insert: ahash_insert_if_new stores a hash only when the company holds no
near-duplicate of it, whatever runs at the same time.

"Search, then insert" races: two uploads of one picture arriving together both find
nothing and both store. ahash_insert_if_new takes transaction-level advisory locks before
it searches, so that any two calls that could conflict wait for each other:

- a call with max_distance <= 11 takes the company's (and algorithm's) lock in shared mode,
  then one lock per pair of 4-bit nibbles within each quarter of the hash (4 quarters x 6
  pairs = 24 locks), keyed by the pair's positions and values. Two hashes within 11 bits
  differ in at most 11 of the 16 nibbles, so at least 5 are equal, two of those lie in one
  quarter (pigeonhole), and the two calls share that pair's lock; unrelated hashes share
  one rarely (about 9% of pairs of random hashes, against 64% for single nibbles);
- a call with max_distance >= 12 takes the company's lock exclusively instead.

So near-identical inserts into one company are serialized and store exactly one row;
inserts into other companies, or of unrelated pictures, mostly do not wait. Every call takes
its locks in one global order (the company's first, then pairs by position), so they cannot
deadlock. The function runs as the caller: row-level security applies to its search and its insert.

``ahash_decisions`` records people's verdicts on pairs of rows ("not duplicates"), which
duplicate listings leave out. ``ahash_hashers.decode`` tells rows hashed from a fully
decoded image ("full", imagehash's own result) from those of a JPEG decoded at reduced
scale ("reduced", ``--fast``), which may differ from imagehash's by a bit or two.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


AHASH_INSERT_IF_NEW = """
CREATE FUNCTION ahash_insert_if_new(company bigint, query bigint, max_distance integer,
                                    meta bigint, src text DEFAULT NULL,
                                    algorithm ahash_algorithm DEFAULT 'ahash',
                                    hasher smallint DEFAULT NULL,
                                    max_matches integer DEFAULT 100)
  RETURNS TABLE (stored boolean, id bigint, company_id bigint, meta_id bigint, hash bigint,
                 distance integer, source text)
  LANGUAGE plpgsql VOLATILE
AS $fn$
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
$fn$
"""

AHASH_DECISIONS_TABLE = """
CREATE TABLE ahash_decisions (
  company_id bigint NOT NULL,
  id_a bigint NOT NULL,
  id_b bigint NOT NULL,
  decision text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ahash_decisions_pkey PRIMARY KEY (company_id, id_a, id_b),
  CONSTRAINT ahash_decisions_order CHECK (id_a < id_b),
  CONSTRAINT ahash_decisions_kind CHECK (decision IN ('not_duplicates'))
)
"""


# One subcommand per ALTER TABLE: Citus propagates no ADD CONSTRAINT beside others.
HASHERS_DECODE = (
    "ALTER TABLE ahash_hashers ADD COLUMN decode text NOT NULL DEFAULT 'full'",
    "ALTER TABLE ahash_hashers"
    " ADD CONSTRAINT ahash_hashers_decode CHECK (decode IN ('full', 'reduced'))",
    "ALTER TABLE ahash_hashers DROP CONSTRAINT ahash_hashers_key",
    "ALTER TABLE ahash_hashers ADD CONSTRAINT ahash_hashers_key"
    " UNIQUE (algorithm, hash_size, imagehash_version, pillow_version, decode)",
)

# Revision 0011 cannot tell reduced-scale hashes from imagehash's: their rows lose the mark.
HASHERS_DECODE_DOWN = (
    "ALTER TABLE ahash_hashers DROP CONSTRAINT ahash_hashers_key",
    "ALTER TABLE ahash_hashers DROP COLUMN decode",
    "ALTER TABLE ahash_hashers ADD CONSTRAINT ahash_hashers_key"
    " UNIQUE (algorithm, hash_size, imagehash_version, pillow_version)",
)


def upgrade() -> None:
    for statement in (
        AHASH_INSERT_IF_NEW,
        AHASH_DECISIONS_TABLE,
        *HASHERS_DECODE,
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        *HASHERS_DECODE_DOWN,
        "DROP TABLE ahash_decisions",
        "DROP FUNCTION ahash_insert_if_new(bigint, bigint, integer, bigint, text,"
        " ahash_algorithm, smallint, integer)",
    ):
        op.execute(statement)
