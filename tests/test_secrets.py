"""No password reaches any output: every command, with a password in each form a user can
write (URL, percent-encoded and malformed, query parameter, keyword/value, quoted,
sslpassword), with and without --debug."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ahashdb import HashStore
from ahashdb.cli import app
from ahashdb.config import redact
from tests.imagegen import photo

SECRET = "S3cretPw"
# Port 1 on loopback refuses at once: every command fails to connect and says so.
FORMS = [
    f"postgresql://u:{SECRET}@127.0.0.1:1/db",
    f"postgresql://u:{SECRET}%zz@127.0.0.1:1/db",  # malformed: libpq's parse error quotes it
    f"postgresql://u:{SECRET}%40x@127.0.0.1:1/db",
    f"postgresql://u@127.0.0.1:1/db?password={SECRET}",
    f"postgresql://u@127.0.0.1:1/db?sslpassword={SECRET}",
    f"host=127.0.0.1 port=1 user=u password={SECRET} dbname=db",
    f"host=127.0.0.1 port=1 user=u password='{SECRET} x' dbname=db",
    f"host=127.0.0.1 port=1 user=u sslpassword={SECRET} dbname=db",
    f"host=127.0.0.1 port=1 user=u password={SECRET}%zz dbname=db",
]


def _commands(image: Path) -> list[list[str]]:
    return [
        ["stats"], ["stats", "-f", "json"], ["migrate"], ["migrate", "--check"],
        ["query", "--hash", "ffd7918181c9ffff", "--company-id", "1"],
        ["query", str(image), "--company-id", "1"],
        ["ingest", str(image), "--company-id", "1", "--meta-id", "1"],
        ["duplicates", "--company-id", "1"],
        ["delete", "--company-id", "1", "--meta-id", "1"],
        ["partition", "2"], ["rls", "status"], ["rls", "enable"], ["roles", "create", "app"],
        ["server", "status"],
    ]


@pytest.mark.parametrize("url", FORMS)
def test_no_command_prints_the_password(url: str, tmp_path: Path) -> None:
    image = tmp_path / "1.png"
    photo(1).save(image)
    runner = CliRunner()
    ran = 0
    for command in _commands(image):
        for debug in ([], ["--debug"]):
            for how in ({"args": ["--database-url", url]},
                        {"env": {"AHASHDB_DATABASE_URL": url}}):
                result = runner.invoke(app, [*debug, *how.get("args", []), *command],
                                       env={"AHASHDB_CONNECT_TIMEOUT": "2",
                                            **how.get("env", {})})
                shown = result.output + (result.stderr if result.stderr_bytes else "")
                assert SECRET not in shown, (command, debug, shown[-300:])
                if command[0] != "server":
                    assert result.exit_code != 0, (command, shown)  # it did try to connect
                ran += 1
    assert ran == len(_commands(image)) * 4


@pytest.mark.parametrize("url", FORMS)
def test_repr_and_redact_hide_the_password(url: str) -> None:
    assert SECRET not in repr(HashStore(url))
    assert SECRET not in redact(url)
