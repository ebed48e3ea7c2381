"""Where the database URL comes from, and how it is shown to people.

Plain string and libpq parsing only: importing SQLAlchemy here would add a quarter of a
second to every command's start-up.
"""

from __future__ import annotations

import contextlib
import os
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

ENV_URL = "AHASHDB_DATABASE_URL"
_SCHEMES = ("postgresql", "postgres")


#: libpq's own variables: when any is set, ahashdb connects as libpq would with them.
LIBPQ_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE",
              "PGPASSFILE")


def database_source(explicit: str | None = None) -> tuple[str | None, str]:
    """(the URL to use, or None for the embedded server; why that one): ``explicit``
    (--database-url) > ``$AHASHDB_DATABASE_URL`` > the standard libpq variables
    (``PGHOST``, ``PGPORT``, ``PGDATABASE``, ``PGUSER``, ``PGSERVICE``, ``PGPASSFILE``), when
    any is set > the embedded server."""
    if explicit:
        return explicit, "--database-url"
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL], f"${ENV_URL}"
    given = [name for name in LIBPQ_VARS if os.environ.get(name)]
    if given:
        return "postgresql://", "libpq's " + ", ".join(f"${name}" for name in given)
    return None, f"the default: no --database-url, ${ENV_URL} or libpq $PG* variable"


def resolve_database_url(explicit: str | None = None) -> str | None:
    """The URL :func:`database_source` chooses; None means the embedded server."""
    return database_source(explicit)[0]


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


# password=… and sslpassword=… in a keyword/value connection string, quoted or not.
_KEYWORD_SECRET = re.compile(r"\b((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_SECRET_KEYS = ("password", "sslpassword")


def redact(url: str) -> str:
    """The connection string with every password (the URL's user part, ``password`` and
    ``sslpassword`` in its query, or keyword/value ``password=…``) shown as ``***``."""
    if "://" not in url:
        return _KEYWORD_SECRET.sub(lambda m: f"{m.group(1)}=***", url)
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
        if any(k in _SECRET_KEYS for k, _ in pairs):
            query = urlencode([(k, "***" if k in _SECRET_KEYS else v) for k, v in pairs],
                              safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets(url: str | None) -> list[str]:
    """Every password a connection string (and ``$PGPASSWORD``) carries, as written and as
    decoded, longest first: what :func:`scrub` removes from any text."""
    found: list[str] = []
    if url:
        if "://" in url:
            netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
            userinfo = netloc.rpartition("@")[0]
            if ":" in userinfo:
                found.append(userinfo.partition(":")[2])
            query = url.partition("?")[2]
            for pair in query.split("&"):
                key, _, value = pair.partition("=")
                if key in _SECRET_KEYS:
                    found.append(value)
        else:
            found += [m.group(2).strip("'") for m in _KEYWORD_SECRET.finditer(url)]
    if os.environ.get("PGPASSWORD"):
        found.append(os.environ["PGPASSWORD"])
    decoded = []
    for secret in found:
        with contextlib.suppress(UnicodeDecodeError):
            decoded.append(unquote(secret, errors="strict"))
    return sorted({s for s in found + decoded if s}, key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """``text`` with every secret of ``url`` (see :func:`secrets`) replaced by ``***``."""
    for secret in secrets(url):
        text = text.replace(secret, "***")
    return text


def describe_target(url: str) -> str:
    """``host:port/db`` (or the socket directory) for error messages; never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(libpq_url(url))
    except Exception:  # noqa: BLE001 - an unparsable URL is still named, without secrets
        return redact(url)
    host = info.get("host") or os.environ.get("PGHOST") or "localhost"
    port = info.get("port") or os.environ.get("PGPORT") or 5432
    database = info.get("dbname") or os.environ.get("PGDATABASE") or ""
    return f"{host}:{port}/{database}"
