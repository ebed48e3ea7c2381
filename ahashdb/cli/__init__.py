"""The ``ahashdb`` command line: a thin layer over :class:`ahashdb.HashStore`.

Each command parses its options, makes one HashStore (or ingest) call and renders the
result. Errors become one ``error: …`` line on stderr and exit status 1 (``--debug`` shows
the traceback instead); usage errors exit 2.
"""

from __future__ import annotations

from . import admin, cluster, find, load, tenants  # noqa: F401 - registers the commands
from .common import app

app.add_typer(tenants.keys_app, name="keys")


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
