"""The embedded server is private to whoever runs it: as root it leaves every folder above
its data directory as it found it, its data and socket are private to the server's user,
and another local user cannot connect; a data directory it could not reach, or a path too
long for a socket, is refused in one line."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_reliability import _without_file_permission_override, cli_command


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def home() -> Iterator[Path]:
    """A private home (mode 700) inside a folder others may enter (711)."""
    base = Path(tempfile.mkdtemp(prefix="ahashdb-home-"))
    base.chmod(0o711)
    home = base / "home"
    home.mkdir(mode=0o700)
    yield home
    shutil.rmtree(base, ignore_errors=True)


def _ahashdb(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("XDG_DATA_HOME", "AHASHDB_DATA_DIR", "AHASHDB_DATABASE_URL")}
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=120,
                          env={**clean, "HOME": str(home), **env})


def test_the_server_leaves_folders_above_it_as_they_were_and_admits_no_other_user(
    home: Path,
) -> None:
    data = home.parent / "data"
    modes = {p: _mode(p) for p in (home, home.parent)}
    started = _ahashdb(home, "server", "start", AHASHDB_DATA_DIR=str(data))
    try:
        assert started.returncode == 0, started.stderr
        assert {p: _mode(p) for p in modes} == modes
        pgdata = data / "pgdata"
        assert _mode(pgdata) == 0o700
        socket = pgdata / ".s.PGSQL.5432"
        assert stat.S_ISSOCK(socket.stat().st_mode) and _mode(socket) == 0o700
        if os.geteuid() == 0:
            import pwd

            assert pwd.getpwuid(pgdata.stat().st_uid).pw_name == "embedded_postgres"
            # Another local user: root without the capabilities that override file modes.
            probe = subprocess.run(
                [sys.executable, "-c", "import psycopg, sys; psycopg.connect(sys.argv[1])",
                 f"postgresql://postgres@/postgres?host={pgdata}"],
                capture_output=True, text=True, preexec_fn=_without_file_permission_override)
            assert probe.returncode != 0
            assert "Permission denied" in probe.stderr or "permission denied" in probe.stderr
        status = _ahashdb(home, "server", "status", AHASHDB_DATA_DIR=str(data))
        assert "running         yes" in status.stdout and str(pgdata) in status.stdout
    finally:
        stopped = _ahashdb(home, "server", "stop", AHASHDB_DATA_DIR=str(data))
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped"
    assert {p: _mode(p) for p in modes} == modes


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's server runs as another user")
def test_a_data_directory_the_server_user_cannot_enter_is_refused_not_loosened(
    home: Path,
) -> None:
    result = _ahashdb(home, "server", "start", XDG_DATA_HOME=str(home / ".local" / "share"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot start the embedded PostgreSQL in ")
    assert f"may not enter {home} (mode 700)" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert _mode(home) == 0o700 and list(home.iterdir()) == []


def test_a_path_too_long_for_a_socket_is_refused_in_one_line(home: Path) -> None:
    deep = home.parent / ("d" * 60) / ("e" * 60)
    result = _ahashdb(home, "server", "start", AHASHDB_DATA_DIR=str(deep))
    assert result.returncode == 1
    assert "more than the 107 a Unix socket allows; set AHASHDB_DATA_DIR" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not deep.exists()
