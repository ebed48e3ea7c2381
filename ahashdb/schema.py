"""SQLAlchemy metadata mirroring the Alembic migrations, for applications' own queries.

The migrations in ``migrations/`` are the source of truth; a test proves this module agrees
with them. Example, joining image hashes with an application's table::

    from sqlalchemy import select
    from ahashdb.schema import image_hashes, ahash_distance, ahash_from_hex

    q = ahash_from_hex("ffd7918181c9ffff")
    stmt = (
        select(products.c.name, image_hashes.c.hash, ahash_distance(image_hashes.c.hash, q))
        .join(products, products.c.id == image_hashes.c.meta_id)
        .where(image_hashes.c.company_id == 7, ahash_distance(image_hashes.c.hash, q) <= 10)
    )
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeDecorator

from .hashes import HashLike, coerce_hash, to_hex, to_signed

__all__ = [
    "HashHex",
    "ahash_chunk_masks",
    "ahash_distance",
    "ahash_from_hex",
    "ahash_to_hex",
    "image_hashes",
    "metadata",
]

CHUNKS = 4

metadata = MetaData()


def _chunk_expression(i: int) -> str:
    shift = 16 * (CHUNKS - 1 - i)
    shifted = f"(hash >> {shift})" if shift else "hash"
    return f"(({shifted} & 65535))::integer"


image_hashes = Table(
    "image_hashes",
    metadata,
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("company_id", BigInteger, nullable=False),
    Column("meta_id", BigInteger, nullable=False),
    Column("hash", BigInteger, nullable=False),
    Column("source", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    *(
        Column(f"c{i}", Integer, Computed(_chunk_expression(i), persisted=True), nullable=False)
        for i in range(CHUNKS)
    ),
    PrimaryKeyConstraint("company_id", "meta_id", "hash", name="image_hashes_pkey"),
    *(
        Index(
            f"image_hashes_c{i}_idx",
            f"c{i}",
            "company_id",
            postgresql_include=["hash", "meta_id"],
        )
        for i in range(CHUNKS)
    ),
    comment="64-bit aHashes (imagehash.average_hash) as signed BIGINT, per company and object",
)

ahash_chunk_masks = Table(
    "ahash_chunk_masks",
    metadata,
    Column("weight", SmallInteger, nullable=False),
    Column("mask", Integer, nullable=False),
    PrimaryKeyConstraint("weight", "mask", name="ahash_chunk_masks_pkey"),
)


class HashHex(TypeDecorator):
    """A BIGINT hash column read and written as 16-hex strings (ints are accepted too)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: HashLike | None, dialect: Any) -> int | None:
        return None if value is None else to_signed(coerce_hash(value))

    def process_result_value(self, value: int | None, dialect: Any) -> str | None:
        return None if value is None else to_hex(value)


class ahash_distance(GenericFunction):  # noqa: N801 - named as the SQL function
    """``ahash_distance(a bigint, b bigint) -> integer``: Hamming distance."""

    type = Integer()
    inherit_cache = True


class ahash_to_hex(GenericFunction):  # noqa: N801
    """``ahash_to_hex(h bigint) -> text``: 16 lowercase hex digits."""

    type = Text()
    inherit_cache = True


class ahash_from_hex(GenericFunction):  # noqa: N801
    """``ahash_from_hex(t text) -> bigint``: the BIGINT of 16 hex digits (error otherwise)."""

    type = BigInteger()
    inherit_cache = True
