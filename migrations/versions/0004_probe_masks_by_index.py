"""Probe masks come from the index whatever the statistics say.

ahash_probes read ``ahash_chunk_masks WHERE weight <= radius``. Until the table was
analyzed (a fresh database, before autovacuum gets to it) the planner guessed a third of
its 65,536 rows and scanned all of them: about 3 ms per chunk, 12 ms per search. A range
(``BETWEEN 0 AND radius``) is guessed small without statistics, so the primary key's
index serves it; and the table is analyzed here once, since it never changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


AHASH_PROBES = """
CREATE OR REPLACE FUNCTION ahash_probes(chunk integer, radius integer) RETURNS integer[]
  LANGUAGE sql STABLE STRICT PARALLEL SAFE
  RETURN ARRAY(SELECT chunk # m.mask FROM ahash_chunk_masks m
                WHERE m.weight BETWEEN 0 AND radius)
"""


AHASH_PROBES_BEFORE = """
CREATE OR REPLACE FUNCTION ahash_probes(chunk integer, radius integer) RETURNS integer[]
  LANGUAGE sql STABLE STRICT PARALLEL SAFE
  RETURN ARRAY(SELECT chunk # m.mask FROM ahash_chunk_masks m WHERE m.weight <= radius)
"""


def upgrade() -> None:
    for statement in (
        AHASH_PROBES,
        'ANALYZE ahash_chunk_masks',
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        AHASH_PROBES_BEFORE,
    ):
        op.execute(statement)
