"""Create image_hashes: one row per (company, object, aHash).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_hashes",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("company_id", sa.BigInteger, nullable=False),
        sa.Column("meta_id", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.BigInteger, nullable=False),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        # The natural key is the primary key: re-inserting the same hash for the same
        # (company, object) is a no-op, lookups by meta_id use it, and it starts with
        # company_id so the table can be partitioned or distributed (Citus) by company_id.
        # id (always generated, so unique) names a row for people; it needs no index.
        sa.PrimaryKeyConstraint("company_id", "meta_id", "hash", name="image_hashes_pkey"),
    )
    op.execute(
        "COMMENT ON TABLE image_hashes IS "
        "'64-bit aHashes (imagehash.average_hash) as signed BIGINT, per company and object'"
    )


def downgrade() -> None:
    op.drop_table("image_hashes")
