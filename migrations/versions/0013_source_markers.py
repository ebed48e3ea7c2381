"""Where each ingested image came from, and which version of it: re-runs skip what is stored.

``ahash_sources`` keeps, per company, algorithm and source (a path or an object's URL), the
change marker the input had when it was hashed: an object store's ETag, or a file's size
and modification time. A re-run of the same folder or bucket compares its listing with these
markers and downloads and hashes only what is new or changed, so a re-run of an ingested
bucket costs a listing and one query. A changed input is hashed again and its old row
replaced. Kept to one company by row-level security, like image_hashes.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


AHASH_SOURCES_TABLE = """
CREATE TABLE ahash_sources (
  company_id bigint NOT NULL,
  algorithm ahash_algorithm NOT NULL,
  source text NOT NULL,
  marker text NOT NULL,
  meta_id bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ahash_sources_pkey PRIMARY KEY (company_id, algorithm, source)
)
"""


def upgrade() -> None:
    for statement in (
        AHASH_SOURCES_TABLE,
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        "DROP TABLE ahash_sources",
    ):
        op.execute(statement)
