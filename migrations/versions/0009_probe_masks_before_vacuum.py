"""ahash_search_index reads its probe masks by index on a database not yet vacuumed.

Its probes are ``ahash_chunk_masks WHERE weight <= radii[i]``. In a generic plan the
planner guesses a third of the table's 65,536 rows for ``<=`` a parameter; once the table
has been vacuumed an index-only scan of that guess still wins, but until then (a freshly
migrated database, for the minute or so before autovacuum gets to the table, or for good
where autovacuum is off) every page would need a heap visit, so it scans the whole table
instead, once per chunk: measured, 3,000 rows just loaded, ahash_search at T=0 took 28-32 ms
against 0.4 ms a minute later. ``BETWEEN 0 AND radii[i]`` selects the same masks (weights
are never negative), and a range with parameters is guessed small, so the primary key's
index serves it either way (0004 made the same change to ahash_probes, for the case of no
statistics at all).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from ahashdb.migrating import earlier_migration

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


_REVISION_0007 = earlier_migration(__file__, "0007_spread_chunks.py")
AHASH_SEARCH_INDEX = _REVISION_0007.search_index_sql("BETWEEN 0 AND radii[{i}]")


def upgrade() -> None:
    op.execute(AHASH_SEARCH_INDEX)


def downgrade() -> None:
    op.execute(_REVISION_0007.AHASH_SEARCH_INDEX)
