"""SQL functions: ahash_distance, ahash_to_hex, ahash_from_hex and a scanning ahash_search.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# SQL-standard bodies (PostgreSQL >= 14) are inlined by the planner.
AHASH_DISTANCE = """
CREATE FUNCTION ahash_distance(a bigint, b bigint) RETURNS integer
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN bit_count((a # b)::bit(64))::integer
"""

AHASH_TO_HEX = """
CREATE FUNCTION ahash_to_hex(h bigint) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN lpad(to_hex(h), 16, '0')
"""

# Raising needs plpgsql; ahash_from_hex stays a one-expression SQL function so it inlines.
AHASH_INVALID_HEX = """
CREATE FUNCTION ahash_invalid_hex(t text) RETURNS bigint
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
  RAISE EXCEPTION 'invalid aHash hex %: expected exactly 16 hex digits (0-9, a-f)', quote_literal(t)
    USING ERRCODE = '22P02';
END
$fn$
"""

AHASH_FROM_HEX = """
CREATE FUNCTION ahash_from_hex(t text) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE
    WHEN t IS NULL THEN NULL
    WHEN t ~ '^[0-9A-Fa-f]{16}$' THEN ('x' || t)::bit(64)::bigint
    ELSE ahash_invalid_hex(t)
  END
"""

# A first, exact search by scanning one company's rows (or all rows when company is NULL).
AHASH_SEARCH_SCAN = """
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
        AHASH_DISTANCE,
        AHASH_TO_HEX,
        AHASH_INVALID_HEX,
        AHASH_FROM_HEX,
        AHASH_SEARCH_SCAN,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION ahash_search(bigint, bigint, integer, integer)")
    op.execute("DROP FUNCTION ahash_from_hex(text)")
    op.execute("DROP FUNCTION ahash_invalid_hex(text)")
    op.execute("DROP FUNCTION ahash_to_hex(bigint)")
    op.execute("DROP FUNCTION ahash_distance(bigint, bigint)")
