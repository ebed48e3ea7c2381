"""URL handling: the right spelling for each library, and never a password in messages."""

from __future__ import annotations

import pytest

from ahashdb.config import describe_target, libpq_url, redact, resolve_database_url, sqlalchemy_url


@pytest.mark.parametrize(
    ("url", "shown", "target"),
    [
        ("postgresql://u:s3cret@db.example:5433/ahash", "postgresql://u:***@db.example:5433/ahash",
         "db.example:5433/ahash"),
        ("postgresql+psycopg://u:s3cret@h/db?sslmode=require",
         "postgresql+psycopg://u:***@h/db?sslmode=require", "h:5432/db"),
        ("postgresql://u@/db?host=/tmp/sock&port=55432&password=s3cret",
         "postgresql://u@/db?host=/tmp/sock&port=55432&password=***", "/tmp/sock:55432/db"),
        ("postgres://h/db", "postgres://h/db", "h:5432/db"),
    ],
)
def test_redact_and_describe_never_show_the_password(url: str, shown: str, target: str) -> None:
    assert redact(url) == shown
    assert describe_target(url) == target
    assert "s3cret" not in redact(url) + describe_target(url)


def test_driver_spellings() -> None:
    assert libpq_url("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_explicit_url_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AHASHDB_DATABASE_URL", "postgresql://env/db")
    assert resolve_database_url("postgresql://explicit/db") == "postgresql://explicit/db"
    assert resolve_database_url(None) == "postgresql://env/db"
    monkeypatch.delenv("AHASHDB_DATABASE_URL")
    assert resolve_database_url(None) is None


def test_libpq_variables_choose_the_server_when_no_url_is_given(database_url: str) -> None:
    import json

    from sqlalchemy.engine import make_url
    from typer.testing import CliRunner

    from ahashdb.cli import app
    from ahashdb.config import database_source

    u = make_url(database_url)
    port = u.query.get("port") or (str(u.port) if u.port else None)
    env = {"AHASHDB_DATABASE_URL": None, "PGHOST": u.query.get("host") or u.host,
           "PGPORT": port, "PGUSER": u.username, "PGDATABASE": u.database,
           "PGHOSTADDR": None, "PGSERVICE": None, "PGPASSFILE": None}
    result = CliRunner().invoke(app, ["stats", "-f", "json"], env=env)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    expected = ", ".join(f"${k}" for k in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER")
                         if env[k])
    assert stats["database_source"] == f"libpq's {expected}"
    assert stats["embedded"] is False and stats["schema_revision"] is not None
    table = CliRunner().invoke(app, ["stats"], env=env).stdout
    assert "— from libpq's $PGHOST" in table
    # the order: --database-url > $AHASHDB_DATABASE_URL > libpq variables > embedded
    import os

    saved = {k: os.environ.pop(k, None) for k in ("AHASHDB_DATABASE_URL", "PGHOST",
                                                 "PGUSER", "PGDATABASE")}
    try:
        assert database_source(None)[0] is None
        os.environ["PGUSER"] = "x"
        assert database_source(None) == ("postgresql://", "libpq's $PGUSER")
        os.environ["AHASHDB_DATABASE_URL"] = "postgresql://env/db"
        assert database_source(None)[1] == "$AHASHDB_DATABASE_URL"
        assert database_source("postgresql://flag/db") == ("postgresql://flag/db",
                                                           "--database-url")
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
