"""Exceptions raised by ahashdb. Every message names the input it is about."""


class AhashdbError(Exception):
    """Base class of every error ahashdb raises on purpose."""


class InvalidHash(AhashdbError, ValueError):
    """A hash value (hex, int, bytes) that is not a 64-bit aHash."""


class ImageError(AhashdbError):
    """An image that cannot be opened or decoded (missing, not an image, truncated, bomb…)."""


class InvalidInput(AhashdbError, ValueError):
    """An argument that is out of range or of the wrong kind (ids, distances, manifests…)."""


class DatabaseUnavailable(AhashdbError):
    """The database cannot be reached; the message names host/port, never the password."""


class SchemaNotMigrated(AhashdbError):
    """The database is reachable but its schema is missing or behind the code."""
