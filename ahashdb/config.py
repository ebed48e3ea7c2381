"""Where the database URL comes from, and how it is shown to people."""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url

ENV_URL = "AHASHDB_DATABASE_URL"


def resolve_database_url(explicit: str | None = None) -> str | None:
    """``explicit`` > ``$AHASHDB_DATABASE_URL`` > None (meaning: the embedded server)."""
    if explicit:
        return explicit
    return os.environ.get(ENV_URL) or None


def sqlalchemy_url(url: str) -> str:
    """The same URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The URL as libpq/psycopg reads it (no SQLAlchemy driver suffix)."""
    u = make_url(url)
    if u.drivername.startswith("postgresql+") or u.drivername == "postgres":
        u = u.set(drivername="postgresql")
    return u.render_as_string(hide_password=False)


def redact(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is still shown, minus anything after '@'
        return url.split("@")[-1]


def describe_target(url: str) -> str:
    """``host:port/db`` (or the socket directory) for error messages; never the password."""
    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001
        return redact(url)
    host = u.host or u.query.get("host") or "localhost"
    if isinstance(host, tuple):
        host = ",".join(host)
    port = u.port or 5432
    return f"{host}:{port}/{u.database or ''}"
