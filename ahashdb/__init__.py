"""ahashdb: perceptual image hashes (aHash, and pHash/dHash/wHash) in PostgreSQL, searched
exactly and fast."""

from .errors import (
    AhashdbError,
    DatabaseUnavailable,
    ImageError,
    InvalidHash,
    InvalidInput,
    SchemaNotMigrated,
)
from .hashes import (
    ALGORITHMS,
    DEFAULT_MAX_DISTANCE,
    average_hash,
    coerce_hash,
    from_bytes,
    from_hex,
    hamming,
    hash_image,
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
    "ALGORITHMS",
    "DEFAULT_MAX_DISTANCE",
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
    "hash_image",
    "hash_of",
    "to_bytes",
    "to_hex",
    "to_imagehash",
    "to_signed",
    "to_unsigned",
]
