"""HashStore's tenant isolation: row-level security in its modes, application roles and
tenant keys. A part of :class:`ahashdb.HashStore`, kept apart because it is one job."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from . import admin, keys
from .checks import check_id, check_source
from .errors import InvalidInput

__all__ = ["TenancyMethods"]


class TenancyMethods:
    """Row-level security, roles and keys; mixed into :class:`ahashdb.HashStore`."""

    connection: psycopg.Connection

    def enable_row_level_security(self) -> None:
        """Turn on Row-Level Security for ``image_hashes``.

        Afterwards every role except the table's owner and superusers (and roles with
        BYPASSRLS) reads and writes only the rows of the company named by the session
        setting ``ahashdb.company_id`` (``HashStore(tenant=N)`` sets it; in SQL,
        ``SET ahashdb.company_id = '7'``); without the setting such a role sees no rows.
        ``ahash_search`` and ``ahash_nearest`` run as the caller, so they obey it too.
        """
        admin.set_row_level_security(self.connection, "trusted")

    def enable_strict_row_level_security(self) -> None:
        """Turn on strict Row-Level Security for ``image_hashes``: a role (the owner
        included; superusers and BYPASSRLS roles excepted) reads and writes only the rows
        of the company that ``SELECT ahash_login('<key>')`` bound the current transaction
        to, with a key from :meth:`create_key`; no setting it can change widens that. In
        Python, :meth:`login` opens such a transaction."""
        admin.set_row_level_security(self.connection, "strict")

    def disable_row_level_security(self) -> None:
        """Turn Row-Level Security off again (drops the policy)."""
        admin.set_row_level_security(self.connection, "off")

    def row_level_security(self) -> bool:
        """True when Row-Level Security is on for ``image_hashes`` (either mode)."""
        return self.row_level_security_mode() != "off"

    def row_level_security_mode(self) -> str:
        """``"off"``, ``"trusted"`` (the company in ``ahashdb.company_id``), ``"strict"``
        (the company a key bound the transaction to) or ``"closed"`` (on with no policy:
        roles other than the owner see nothing)."""
        return admin.row_level_security(self.connection)

    def create_key(self, company_id: int | None, name: str | None = None) -> str:
        """A new key for ``company_id`` (None: an operator's key, which binds a transaction
        to any one company it names), returned once: only its SHA-256 is stored."""
        return keys.create(self.connection,
                           None if company_id is None else check_id("company_id", company_id),
                           check_source(name))

    def keys(self, company_id: int | None = None) -> list[dict[str, Any]]:
        """The keys (never their secrets): id, company_id, name, created_at, revoked_at."""
        return keys.list_keys(self.connection,
                              None if company_id is None else check_id("company_id", company_id))

    def revoke_key(self, key_id: int) -> bool:
        """Revoke a key by id, at once; False when no such unrevoked key exists."""
        return keys.revoke(self.connection, check_id("key id", key_id))

    @contextlib.contextmanager
    def login(self, key: str, company_id: int | None = None) -> Iterator[int]:
        """A transaction bound to the company of ``key`` (``ahash_login``; an operator's
        key: to ``company_id``), for row-level security in either mode; yields the company id.
        Everything this store runs inside the ``with`` block is in that transaction and
        sees that company only. A key that binds nothing raises
        :class:`ahashdb.keys.KeyRefused`."""
        conn = self.connection
        with conn.transaction():
            yield keys.login(conn, key, None if company_id is None
                             else check_id("company_id", company_id))

    def create_application_role(self, name: str, password: str | None = None) -> bool:
        """Create (or reset) login role ``name`` with least privilege for the API, the CLI
        and applications: rows of ``image_hashes`` (SELECT, INSERT, DELETE; no UPDATE),
        SELECT on the shared tables, and INSERT of a new hasher version; nothing else.
        Turns row-level security on, so the role sees the company of its session. Run it as
        the tables' owner. Returns True when the role was new."""
        if not isinstance(name, str) or not name or len(name) > 63 or "\x00" in name:
            raise InvalidInput(f"role name {name!r}: expected 1 to 63 characters")
        return admin.create_application_role(self.connection, name, password)
