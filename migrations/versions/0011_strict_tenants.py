"""Tenant keys, and a tenant binding that only a key can make (``rls enable --strict``).

In the "trusted application" mode the row-level security policy reads the setting
``ahashdb.company_id``, which any role may change: SQL injected into an application can
``SET`` it to another company. This revision adds what a strict mode needs:

- ``ahash_api_keys``: per-company keys, stored as SHA-256 hashes only (``ahashdb keys``),
  and operators' keys for every company (``company_id`` NULL), which bind a transaction to
  one company they name.
- ``ahash_bindings``: which company the current transaction of each backend was bound to.
  No application role can read or write it.
- ``ahash_login(key[, company])``: checks a key inside PostgreSQL (``SECURITY DEFINER`` with a
  pinned ``search_path``) and binds the current transaction to its company (an operator's
  key: to ``company``); an unknown or revoked key is an error (SQLSTATE 28000), and so is a
  company's key naming another company (42501).
- ``ahash_bound_company()``: the company bound to the current transaction, or NULL. A
  binding names its backend and its transaction id, so it ends with the transaction, and a
  pooler in transaction mode cannot carry it into another client's transaction.

The strict policy itself (``company_id = (SELECT ahash_bound_company())``, forced on the
owner too) is turned on by ``ahashdb rls enable --strict``, as the trusted one is.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


AHASH_API_KEYS_TABLE = """
CREATE TABLE ahash_api_keys (
  id bigint GENERATED ALWAYS AS IDENTITY,
  company_id bigint,
  name text,
  key_hash bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  CONSTRAINT ahash_api_keys_pkey PRIMARY KEY (id),
  CONSTRAINT ahash_api_keys_key_hash_key UNIQUE (key_hash)
)
"""

AHASH_BINDINGS_TABLE = """
CREATE UNLOGGED TABLE ahash_bindings (
  pid integer NOT NULL,
  xact bigint NOT NULL,
  company_id bigint NOT NULL,
  CONSTRAINT ahash_bindings_pkey PRIMARY KEY (pid)
)
"""

AHASH_LOGIN = """
CREATE FUNCTION ahash_login(key text, company bigint DEFAULT NULL) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  known boolean;
  own bigint;
BEGIN
  SELECT true, k.company_id INTO known, own FROM public.ahash_api_keys k
   WHERE k.key_hash = sha256(convert_to(key, 'UTF8')) AND k.revoked_at IS NULL;
  IF known IS NULL THEN
    RAISE EXCEPTION 'ahash_login: unknown or revoked key' USING ERRCODE = '28000';
  END IF;
  IF own IS NULL AND company IS NULL THEN
    RAISE EXCEPTION 'ahash_login: an operator''s key needs the company to work on'
      USING ERRCODE = '22004';
  END IF;
  IF own IS NOT NULL AND company IS NOT NULL AND company <> own THEN
    RAISE EXCEPTION 'ahash_login: this key is not company %''s', company
      USING ERRCODE = '42501';
  END IF;
  company := coalesce(own, company);
  INSERT INTO public.ahash_bindings (pid, xact, company_id)
  VALUES (pg_backend_pid(), pg_current_xact_id()::text::bigint, company)
  ON CONFLICT (pid) DO UPDATE SET xact = EXCLUDED.xact, company_id = EXCLUDED.company_id;
  RETURN company;
END
$fn$
"""

AHASH_BOUND_COMPANY = """
CREATE FUNCTION ahash_bound_company() RETURNS bigint
  LANGUAGE sql STABLE SECURITY DEFINER PARALLEL RESTRICTED
  SET search_path = pg_catalog, pg_temp
  RETURN (SELECT b.company_id FROM public.ahash_bindings b
           WHERE b.pid = pg_backend_pid()
             AND b.xact = pg_current_xact_id_if_assigned()::text::bigint)
"""


def upgrade() -> None:
    for statement in (
        AHASH_API_KEYS_TABLE,
        AHASH_BINDINGS_TABLE,
        "REVOKE ALL ON ahash_api_keys, ahash_bindings FROM PUBLIC",
        AHASH_LOGIN,
        AHASH_BOUND_COMPANY,
    ):
        op.execute(statement)


# A strict policy depends on ahash_bound_company: it goes (row-level security stays on, so
# roles other than the owner see nothing until `ahashdb rls enable` makes a trusted one).
DROP_STRICT_POLICY = """
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_policies WHERE tablename = 'image_hashes'
              AND policyname = 'ahashdb_tenant' AND qual LIKE '%ahash_bound_company%') THEN
    DROP POLICY ahashdb_tenant ON image_hashes;
    ALTER TABLE image_hashes NO FORCE ROW LEVEL SECURITY;
  END IF;
END
$$"""


def downgrade() -> None:
    for statement in (
        DROP_STRICT_POLICY,
        "DROP FUNCTION ahash_bound_company()",
        "DROP FUNCTION ahash_login(text, bigint)",
        "DROP TABLE ahash_bindings",
        "DROP TABLE ahash_api_keys",
    ):
        op.execute(statement)
