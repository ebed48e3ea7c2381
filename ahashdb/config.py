"""Where the database URL comes from, and how it is shown to people.

Plain string and libpq parsing only: importing SQLAlchemy here would add a quarter of a
second to every command's start-up.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ENV_URL = "AHASHDB_DATABASE_URL"
_SCHEMES = ("postgresql", "postgres")


def resolve_database_url(explicit: str | None = None) -> str | None:
    """``explicit`` > ``$AHASHDB_DATABASE_URL`` > None (meaning: the embedded server)."""
    if explicit:
        return explicit
    return os.environ.get(ENV_URL) or None


def database_url(explicit: str | None = None) -> str:
    """The URL to use: ``explicit`` > ``$AHASHDB_DATABASE_URL`` > the embedded server
    (started if need be)."""
    resolved = resolve_database_url(explicit)
    if resolved is not None:
        return resolved
    from . import embedded

    return embedded.start()


def _with_scheme(url: str, scheme: str) -> str:
    head, sep, rest = url.partition("://")
    if sep and head.split("+")[0] in _SCHEMES:
        return f"{scheme}://{rest}"
    return url


def sqlalchemy_url(url: str) -> str:
    """The same URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
    return _with_scheme(url, "postgresql+psycopg")


def libpq_url(url: str) -> str:
    """The URL as libpq/psycopg reads it (no SQLAlchemy driver suffix)."""
    return _with_scheme(url, "postgresql")


def redact(url: str) -> str:
    """The URL with any password (in the user part or the query) shown as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rsplit("@", 1)[-1]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if colon else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k == "password" for k, _ in pairs):
            query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def describe_target(url: str) -> str:
    """``host:port/db`` (or the socket directory) for error messages; never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(libpq_url(url))
    except Exception:  # noqa: BLE001 - an unparsable URL is still named, without secrets
        return redact(url)
    host = info.get("host") or "localhost"
    port = info.get("port") or 5432
    return f"{host}:{port}/{info.get('dbname') or ''}"
