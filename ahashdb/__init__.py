"""ahashdb: perceptual image hashes (aHash) in PostgreSQL, searched exactly and fast."""

from .errors import (
    AhashdbError,
    DatabaseUnavailable,
    ImageError,
    InvalidHash,
    InvalidInput,
    SchemaNotMigrated,
)
from .hashes import (
    average_hash,
    coerce_hash,
    from_bytes,
    from_hex,
    hamming,
    hash_of,
    to_bytes,
    to_hex,
    to_imagehash,
    to_signed,
    to_unsigned,
)
from .store import HashStore, Match

__version__ = "0.1.0"

__all__ = [
    "AhashdbError",
    "DatabaseUnavailable",
    "HashStore",
    "ImageError",
    "InvalidHash",
    "InvalidInput",
    "Match",
    "SchemaNotMigrated",
    "average_hash",
    "coerce_hash",
    "from_bytes",
    "from_hex",
    "hamming",
    "hash_of",
    "to_bytes",
    "to_hex",
    "to_imagehash",
    "to_signed",
    "to_unsigned",
]
