"""Tenant keys: made here, stored as SHA-256 hashes, checked inside PostgreSQL by
``ahash_login`` (schema 0011), which binds the current transaction to the key's company."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

from .errors import InvalidInput

__all__ = ["PREFIX", "create", "list_keys", "login", "revoke"]

#: Every key starts with this, so a key found in a log or a repository is recognisable.
PREFIX = "ahk_"


def create(conn: psycopg.Connection, company_id: int, name: str | None) -> str:
    """A new random key for ``company_id`` (256 bits); its hash is stored, it is not."""
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


def login(conn: psycopg.Connection, key: str) -> int:
    """Bind the current transaction to ``key``'s company (``ahash_login``) and return it;
    InvalidInput when the key is unknown or revoked."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT ahash_login(%s)", (key,)).fetchone()
    except psycopg.errors.InvalidAuthorizationSpecification:
        raise InvalidInput("key: unknown or revoked") from None
    assert row is not None
    return int(row[0])
