"""HashStore's layout and statistics: hash partitions on one server, or Citus shards
across several. A part of :class:`ahashdb.HashStore`, kept apart because it is one job."""

from __future__ import annotations

from typing import Any

import psycopg

from . import admin, citus
from .checks import check_id
from .config import redact

__all__ = ["LayoutMethods"]


class LayoutMethods:
    """Partitions, Citus distribution and stats; mixed into :class:`ahashdb.HashStore`."""

    connection: psycopg.Connection
    url: str
    database_source: str
    _embedded: bool

    def partitions(self) -> int:
        """How many hash partitions (by company_id) ``image_hashes`` has; 1 when plain."""
        return admin.partitions(self.connection)

    def partition(self, partitions: int) -> None:
        """Rebuild ``image_hashes`` hash-partitioned by company_id into ``partitions`` tables
        (``1``: back to one plain table), in one transaction that locks out writers.

        Rows keep their ids; indexes, grants and row-level security carry over; the SQL
        functions keep working unchanged (each company lives in one partition, so a
        company-scoped search touches one partition's indexes). Then VACUUM ANALYZE.
        Refused on a Citus-distributed table.
        """
        admin.partition(self.connection, partitions)

    def distribute(self, shard_count: int | None = None) -> list[str]:
        """On a Citus coordinator: distribute the schema by company (reference tables,
        ``image_hashes`` and its colocated tables by ``company_id`` in ``shard_count``
        shards, the company-scoped functions delegated to the worker holding the company).
        Idempotent; returns what it changed. See :mod:`ahashdb.citus`."""
        return citus.enable(self.connection, shard_count)

    def citus_status(self) -> dict[str, Any]:
        """The Citus version, nodes, what is distributed, and image_hashes' shard placements
        per node (``{"citus": None, …}`` without Citus)."""
        return citus.status(self.connection)

    def stats(self, company_id: int | None = None) -> dict[str, Any]:
        """Rows per company, sizes, degenerate hashes, server version and schema revision;
        on Citus, rows per node too."""
        company = None if company_id is None else check_id("company_id", company_id)
        from . import embedded

        return {
            "database": redact(self.url),
            "database_source": self.database_source,
            "embedded": self._embedded,
            "data_directory": str(embedded.pgdata_dir()) if self._embedded else None,
            **admin.stats(self.connection, company),
        }
