"""Connections to the database and its schema: connecting, the schema revision, and
running the Alembic migrations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg

from .config import describe_target, libpq_url, sqlalchemy_url
from .errors import AhashdbError, DatabaseUnavailable, InvalidInput

__all__ = [
    "SCHEMA_REVISION",
    "alembic_config",
    "connect",
    "lost_connection",
    "migrations_path",
    "read_revision",
    "run_alembic",
]

#: The Alembic revision this code expects (a test checks it is the migrations' head).
SCHEMA_REVISION = "0017"

# One migrator at a time: the others wait on this lock, then find nothing to do.
_MIGRATION_LOCK = 7340580466392731649


def migrations_path() -> Path:
    """The Alembic script folder: inside the installed package, or the source tree's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise AhashdbError(f"ahashdb's migrations folder is missing (looked in {here})")


def connect(url: str, *, statement_timeout: float | None = None,
            tenant: int | None = None) -> psycopg.Connection:
    """An autocommit connection to ``url``; ``statement_timeout`` in seconds, ``tenant``
    the company set in ``ahashdb.company_id``. Failing to connect is DatabaseUnavailable."""
    try:
        conn = psycopg.connect(
            libpq_url(url),
            autocommit=True,
            connect_timeout=int(os.environ.get("AHASHDB_CONNECT_TIMEOUT", "10")),
            application_name="ahashdb",
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {describe_target(url)}: {reason}"
        ) from None
    if statement_timeout is not None:
        conn.execute("SELECT set_config('statement_timeout', %s, false)",
                     (f"{round(statement_timeout * 1000)}ms",))
    if tenant is not None and _set_tenant(conn, tenant):
        conn.close()
        raise InvalidInput(
            f"{describe_target(url)} is distributed by Citus and row-level security"
            " keeps this role to ahashdb.company_id, which a session setting does not"
            " carry to the workers (every read would come back empty): set it per"
            " transaction with SET LOCAL ahashdb.company_id (docs/scaling.md)")
    return conn


def _set_tenant(conn: psycopg.Connection, tenant: int) -> bool:
    """Set ``ahashdb.company_id`` for the session; True when image_hashes is distributed by
    Citus and its row-level security applies to this role, for then the session setting
    never reaches the shards. (One round trip; a second only on a Citus database.)"""
    row = conn.execute(
        "SELECT set_config('ahashdb.company_id', %s, false),"
        " (SELECT c.relrowsecurity AND (c.relforcerowsecurity OR c.relowner <> r.oid)"
        "  AND NOT (r.rolsuper OR r.rolbypassrls)"
        "  AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
        "  FROM pg_class c, pg_roles r"
        "  WHERE c.oid = to_regclass('image_hashes') AND r.rolname = current_user)",
        (str(tenant),)).fetchone()
    if not (row and row[1]):
        return False
    return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_dist_partition"
                        " WHERE logicalrelid = 'image_hashes'::regclass)").fetchone()[0]


def read_revision(conn: psycopg.Connection) -> str | None:
    """The database's Alembic revision, or None when it has no ahashdb schema."""
    exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def alembic_config(url: str) -> Any:
    """An Alembic ``Config`` for ``url`` and ahashdb's migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_path()))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def run_alembic(url: str, direction: str, revision: str) -> None:
    """``alembic upgrade|downgrade revision`` on ``url``, in one transaction, one migrator
    at a time. A lost connection is DatabaseUnavailable; the server's own refusal is
    raised as its psycopg error."""
    from alembic import command
    from sqlalchemy import create_engine, pool
    from sqlalchemy import text as sa_text

    cfg = alembic_config(url)
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa_text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            cfg.attributes["connection"] = conn
            getattr(command, direction)(cfg, revision)
    except psycopg.Error as exc:
        if lost_connection(exc):
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {describe_target(url)}: {exc}"
            ) from None
        raise
    except Exception as exc:
        orig = getattr(exc, "orig", None)
        if isinstance(orig, psycopg.Error) and lost_connection(orig):
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {describe_target(url)}:"
                f" {str(orig).strip().splitlines()[-1]}"
            ) from None
        if isinstance(orig, psycopg.Error):
            raise orig from None  # the server's own error (a migration refusing, say)
        raise
    finally:
        engine.dispose()


def lost_connection(exc: psycopg.Error) -> bool:
    """True for failures to reach or stay connected to the server (no SQLSTATE: libpq's own;
    class 08: connection exception; 57P: the server shutting down)."""
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))
