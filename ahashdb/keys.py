"""Tenant keys: made here, stored as SHA-256 hashes, checked inside PostgreSQL by
``ahash_login`` (schema 0011), which binds the current transaction to the key's company."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

from .errors import InvalidInput

__all__ = ["PREFIX", "KeyRefused", "create", "list_keys", "login", "revoke"]

#: Every key starts with this, so a key found in a log or a repository is recognisable.
PREFIX = "ahk_"


def create(conn: psycopg.Connection, company_id: int | None, name: str | None) -> str:
    """A new random key (256 bits) for ``company_id``, or (None) an operator's key for every
    company; its hash is stored, it is not."""
    key = PREFIX + secrets.token_urlsafe(32)
    conn.execute("INSERT INTO ahash_api_keys (company_id, name, key_hash)"
                 " VALUES (%s, %s, sha256(convert_to(%s, 'UTF8')))", (company_id, name, key))
    return key


def list_keys(conn: psycopg.Connection, company_id: int | None) -> list[dict[str, Any]]:
    """Every key of ``company_id`` (or of all companies), oldest first, without secrets."""
    rows = conn.execute(
        "SELECT id, company_id, name, created_at, revoked_at FROM ahash_api_keys"
        " WHERE %s::bigint IS NULL OR company_id = %s ORDER BY id",
        (company_id, company_id)).fetchall()
    return [{"id": r[0], "company_id": r[1], "name": r[2], "created_at": r[3],
             "revoked_at": r[4]} for r in rows]


def revoke(conn: psycopg.Connection, key_id: int) -> bool:
    """Revoke key ``key_id``; logins with it fail from the next transaction on."""
    cur = conn.execute("UPDATE ahash_api_keys SET revoked_at = now()"
                       " WHERE id = %s AND revoked_at IS NULL", (key_id,))
    return cur.rowcount == 1


class KeyRefused(InvalidInput):
    """A key that binds nothing: unknown or revoked (``status`` 401), another company's
    (403), or an operator's key with no company named (400)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def login(conn: psycopg.Connection, key: str, company_id: int | None = None) -> int:
    """Bind the current transaction (the caller opens it) to ``key``'s company (an
    operator's key: to ``company_id``) with ``ahash_login``, and return it; KeyRefused when
    it cannot. The same statement sets ``ahashdb.company_id`` for the transaction, so a
    trusted-mode policy sees the company too: one round trip in all."""
    try:
        row = conn.execute(
            "SELECT c, set_config('ahashdb.company_id', c::text, true)"
            " FROM ahash_login(%s, %s) AS c", (key, company_id)).fetchone()
    except psycopg.errors.InvalidAuthorizationSpecification:
        raise KeyRefused("key: unknown or revoked", 401) from None
    except psycopg.errors.InsufficientPrivilege:
        raise KeyRefused(f"key: not company {company_id}'s", 403) from None
    except psycopg.errors.NullValueNotAllowed:
        raise KeyRefused("key: an operator's key needs the company to work on", 400) from None
    assert row is not None
    return int(row[0])
