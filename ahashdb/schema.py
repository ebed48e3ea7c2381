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
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ENUM
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeDecorator

from .hashes import ALGORITHMS, HashLike, coerce_hash, to_hex, to_signed

__all__ = [
    "CHUNK_TERMS",
    "HashHex",
    "ahash_algorithm",
    "ahash_hashers",
    "ahash_chunk_masks",
    "ahash_distance",
    "ahash_from_hex",
    "ahash_to_hex",
    "chunk_sql",
    "chunk_values",
    "image_hashes",
    "metadata",
]

CHUNKS = 4

metadata = MetaData()

#: The SQL enum naming a row's hash function (imagehash's, at hash_size 8).
ahash_algorithm = ENUM(*ALGORITHMS, name="ahash_algorithm", create_type=False,
                       metadata=metadata)


#: How the 64 bits are dealt into the four 16-bit chunks of the search indexes (migration
#: 0007). Chunk i holds the 16 grid cells (row r, column c) of the 8x8 aHash grid with
#: (r + c) % 4 == i: two cells of every row, one column further in each next row, so no two
#: of its bits are side by side or one above the other. (Whole rows made each chunk nearly
#: constant on smooth images, and popular chunk values make many candidates.) Each chunk is
#: the OR of its terms ``(hash >> shift) & mask``, a negative shift shifting left; which of
#: the 16 positions a cell takes is arbitrary but fixed, chosen so that few terms suffice.
CHUNK_TERMS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((-9, 34816), (6, 17544), (25, 8772), (40, 4386), (59, 17)),
    ((-2, 17544), (17, 8772), (32, 4386), (40, 34816), (58, 17)),
    ((-11, 34816), (8, 17544), (23, 8772), (42, 4386), (57, 17)),
    ((0, 17544), (15, 8772), (24, 34816), (41, 4386), (56, 17)),
)


def chunk_sql(i: int, value: str = "hash") -> str:
    """SQL for chunk ``i`` of the BIGINT expression ``value`` (an integer 0..65535)."""
    terms = []
    for shift, mask in CHUNK_TERMS[i]:
        moved = value if shift == 0 else (
            f"({value} >> {shift})" if shift > 0 else f"({value} << {-shift})")
        terms.append(f"({moved} & {mask})")
    return f"({' | '.join(terms)})::integer"


def chunk_values(value: int) -> tuple[int, ...]:
    """The four chunk values of a hash (any spelling's int, signed or unsigned), as the
    generated columns ``c0``..``c3`` hold them."""
    h = value & ((1 << 64) - 1)
    return tuple(
        sum(((h >> s) if s >= 0 else (h << -s)) & m for s, m in terms)
        for terms in CHUNK_TERMS
    )


image_hashes = Table(
    "image_hashes",
    metadata,
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("company_id", BigInteger, nullable=False),
    Column("meta_id", BigInteger, nullable=False),
    Column("hash", BigInteger, nullable=False),
    Column("source", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    Column("algorithm", ahash_algorithm, server_default=text("'ahash'::ahash_algorithm"),
           nullable=False),
    # The ahash_hashers row (imagehash/Pillow versions) that computed it; NULL: not ahashdb.
    Column("hasher", SmallInteger, nullable=True),
    *(
        Column(f"c{i}", Integer, Computed(chunk_sql(i), persisted=True), nullable=False)
        for i in range(CHUNKS)
    ),
    # The algorithm as a smallint (ahash_algorithm_code: 0 ahash, 1 phash, 2 dhash, 3 whash),
    # the key of the chunk indexes: integer equality is leakproof, so row-level security
    # still lets it narrow an index scan, which an enum's equality is not allowed to do.
    Column("algorithm_code", SmallInteger, Computed("ahash_algorithm_code(algorithm)",
                                                    persisted=True), nullable=False),
    PrimaryKeyConstraint("company_id", "meta_id", "algorithm", "hash", name="image_hashes_pkey"),
    *(
        Index(
            f"image_hashes_c{i}_idx",
            f"c{i}",
            "algorithm_code",
            "company_id",
            postgresql_include=["hash", "meta_id"],
            postgresql_with={"fillfactor": 80},
        )
        for i in range(CHUNKS)
    ),
    comment="64-bit perceptual hashes (imagehash average_hash, phash, dhash, whash) as signed"
    " BIGINT, per company and object",
)

ahash_hashers = Table(
    "ahash_hashers",
    metadata,
    Column("id", SmallInteger, Identity(always=True), nullable=False),
    Column("algorithm", ahash_algorithm, nullable=False),
    Column("hash_size", SmallInteger, nullable=False),
    Column("imagehash_version", Text, nullable=False),
    Column("pillow_version", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    PrimaryKeyConstraint("id", name="ahash_hashers_pkey"),
    UniqueConstraint("algorithm", "hash_size", "imagehash_version", "pillow_version",
                     name="ahash_hashers_key"),
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
