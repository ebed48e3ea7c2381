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
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
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

from .ddl import (
    CHUNK_FILLFACTOR,
    CHUNK_INDEX_INCLUDE,
    CHUNK_INDEX_KEY,
    CHUNK_INDEXES,
    CHUNK_TERMS,
    CHUNKS,
    INDEX_DDL,
    PRIMARY_KEY,
    RLS_DISABLE,
    RLS_ENABLE,
    chunk_sql,
    chunk_values,
)
from .hashes import ALGORITHMS, HashLike, coerce_hash, to_hex, to_signed

__all__ = [
    "CHUNK_INDEXES",
    "CHUNK_TERMS",
    "INDEX_DDL",
    "RLS_DISABLE",
    "RLS_ENABLE",
    "HashHex",
    "ahash_algorithm",
    "ahash_api_keys",
    "ahash_bindings",
    "ahash_decisions",
    "ahash_sources",
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

metadata = MetaData()

#: The SQL enum naming a row's hash function (imagehash's, at hash_size 8).
ahash_algorithm = ENUM(*ALGORITHMS, name="ahash_algorithm", create_type=False,
                       metadata=metadata)


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
    PrimaryKeyConstraint(*PRIMARY_KEY, name="image_hashes_pkey"),
    *(
        Index(
            name,
            f"c{i}",
            *CHUNK_INDEX_KEY,
            postgresql_include=list(CHUNK_INDEX_INCLUDE),
            postgresql_with={"fillfactor": CHUNK_FILLFACTOR},
        )
        for i, name in enumerate(CHUNK_INDEXES)
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
    # "full": imagehash's own result; "reduced": a JPEG decoded at reduced scale (--fast).
    Column("decode", Text, server_default=text("'full'::text"), nullable=False),
    PrimaryKeyConstraint("id", name="ahash_hashers_pkey"),
    UniqueConstraint("algorithm", "hash_size", "imagehash_version", "pillow_version", "decode",
                     name="ahash_hashers_key"),
    CheckConstraint("decode IN ('full', 'reduced')", name="ahash_hashers_decode"),
)

ahash_chunk_masks = Table(
    "ahash_chunk_masks",
    metadata,
    Column("weight", SmallInteger, nullable=False),
    Column("mask", Integer, nullable=False),
    PrimaryKeyConstraint("weight", "mask", name="ahash_chunk_masks_pkey"),
)


#: Tenant keys (schema 0011): only each key's SHA-256 is stored.
ahash_api_keys = Table(
    "ahash_api_keys",
    metadata,
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("company_id", BigInteger, nullable=True),  # NULL: an operator's key
    Column("name", Text, nullable=True),
    Column("key_hash", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("id", name="ahash_api_keys_pkey"),
    UniqueConstraint("key_hash", name="ahash_api_keys_key_hash_key"),
)

#: Which company ahash_login bound each backend's current transaction to (unlogged).
ahash_bindings = Table(
    "ahash_bindings",
    metadata,
    Column("pid", Integer, nullable=False),
    Column("xact", BigInteger, nullable=False),
    Column("company_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("pid", name="ahash_bindings_pkey"),
    prefixes=["UNLOGGED"],
)


#: People's verdicts on pairs of rows (schema 0012): "not_duplicates" pairs are left out of
#: duplicate listings.
ahash_decisions = Table(
    "ahash_decisions",
    metadata,
    Column("company_id", BigInteger, nullable=False),
    Column("id_a", BigInteger, nullable=False),
    Column("id_b", BigInteger, nullable=False),
    Column("decision", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    PrimaryKeyConstraint("company_id", "id_a", "id_b", name="ahash_decisions_pkey"),
    CheckConstraint("id_a < id_b", name="ahash_decisions_order"),
    CheckConstraint("decision IN ('not_duplicates')", name="ahash_decisions_kind"),
)


#: Which version (change marker) of each source was ingested (schema 0013).
ahash_sources = Table(
    "ahash_sources",
    metadata,
    Column("company_id", BigInteger, nullable=False),
    Column("algorithm", ahash_algorithm, nullable=False),
    Column("source", Text, nullable=False),
    Column("marker", Text, nullable=False),
    Column("meta_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    PrimaryKeyConstraint("company_id", "algorithm", "source", name="ahash_sources_pkey"),
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
