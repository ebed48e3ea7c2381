"""Commands that keep tenants apart: rls, roles and keys."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InvalidInput
from ..output import Format, render
from .common import FormatOpt, check_ids, errors, open_store, rls_app, roles_app

keys_app = typer.Typer(
    help="Tenant keys: a key binds a transaction to its company (strict row-level security)"
    " and will authenticate the HTTP service.\n\n"
    "Example:  ahashdb keys create --company-id 7 --name web",
    no_args_is_help=True,
)

_MODE_LINES = {
    "off": "row-level security off",
    "trusted": "row-level security on (trusted): roles other than the owner see only the"
    " company in ahashdb.company_id",
    "strict": "row-level security on (strict): every role but superusers sees only the company"
    " that ahash_login('<key>') bound its transaction to",
    "closed": "row-level security on with no policy: roles other than the owner see nothing"
    " (run `ahashdb rls enable`)",
}


# --- rls -------------------------------------------------------------------------------------


@rls_app.command("enable")
def rls_enable(
    ctx: typer.Context,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Bind each transaction to a company only through a key:"
        " SELECT ahash_login('<key>') (keys from `ahashdb keys create`). Forced on the"
        " owner too; superusers and BYPASSRLS roles still see everything.")] = False,
) -> None:
    """Restrict roles to one company's rows, by PostgreSQL row-level security.

    Trusted mode (the default) protects against an application that forgets its tenant: a
    role other than the owner (not a superuser, no BYPASSRLS) reads and writes only rows
    whose company_id equals the session setting ahashdb.company_id; unset, it sees nothing.
    Any role may change that setting, so it does not stop SQL injected into the application.

    Strict mode (--strict) protects against the application's own role: the company is the
    one ahash_login('<key>') bound the current transaction to, checked inside PostgreSQL
    against stored key hashes; SET of any setting changes nothing, and the binding ends with
    the transaction (safe behind a pooler in transaction mode). Run it as the table's owner.

    \b
    Examples:
      ahashdb rls enable            then, per session:      SET ahashdb.company_id = '7';
      ahashdb rls enable --strict   then, per transaction:  SELECT ahash_login('ahk_…');
    """
    with errors(ctx):
        store = open_store(ctx)
        if strict:
            store.enable_strict_row_level_security()
        else:
            store.enable_row_level_security()
        store.close()
    typer.echo(_MODE_LINES["strict" if strict else "trusted"])


@rls_app.command("disable")
def rls_disable(ctx: typer.Context) -> None:
    """Turn row-level security off (every role with SELECT sees every company again).

    Example:  ahashdb rls disable
    """
    with errors(ctx):
        store = open_store(ctx)
        store.disable_row_level_security()
        store.close()
    typer.echo("row-level security off")


@rls_app.command("status")
def rls_status(ctx: typer.Context) -> None:
    """Say whether row-level security is on, and in which mode.

    Example:  ahashdb rls status
    """
    with errors(ctx):
        store = open_store(ctx)
        mode = store.row_level_security_mode()
        store.close()
    typer.echo(_MODE_LINES[mode])


# --- roles ------------------------------------------------------------------------------------


@roles_app.command("create")
def roles_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The role to create or reset.",
                                        show_default=False)],
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="Read the role's password from the first line of this file"
        " (- for stdin); without it the role gets no password (peer or certificate login).",
        show_default=False, readable=False)] = None,
) -> None:
    """Create a login role for an application with exactly what ahashdb needs, and nothing
    more: SELECT, INSERT and DELETE on image_hashes rows under row-level security (turned on
    here), SELECT on ahash_chunk_masks and alembic_version, SELECT and INSERT on
    ahash_hashers. It cannot update rows, change shared tables or alter the schema.

    Run as the tables' owner. Running it again resets the role's grants (and password).

    \b
    Example:
      ahashdb roles create app_web --password-file app_web.secret
      then connect as app_web and SET ahashdb.company_id = '7' (HashStore(url, tenant=7))
    """
    with errors(ctx):
        password = None
        if password_file is not None:
            text = sys.stdin.read() if str(password_file) == "-" else _read_secret(password_file)
            password = text.splitlines()[0] if text.strip() else None
            if not password:
                raise InvalidInput(f"--password-file {password_file}: empty")
        store = open_store(ctx)
        new = store.create_application_role(name, password)
        store.close()
    typer.echo(f"role {name} {'created' if new else 'reset'}: rows of one company at a time"
               " (row-level security on)")


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"--password-file {path}: {exc.strerror or exc}") from None


# --- keys -------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    company_id: Annotated[int | None, typer.Option(
        "--company-id", help="The key's company.", show_default=False)] = None,
    all_companies: Annotated[bool, typer.Option(
        "--all-companies", help="An operator's key: it binds a transaction to whichever one"
        " company it names (ahash_login(key, company); the service's company_id=).")] = False,
    name: Annotated[str | None, typer.Option(help="A label for people (who holds the key).",
                                             show_default=False)] = None,
) -> None:
    """Make a key for one company (or an operator's key) and print it, alone, once: only
    its SHA-256 is stored.

    \b
    Examples:
      ahashdb keys create --company-id 7 --name web > web.key
      ahashdb keys create --all-companies --name ops > ops.key
    """
    if (company_id is None) != all_companies:
        raise typer.BadParameter("give --company-id N or --all-companies (exactly one)")
    with errors(ctx):
        check_ids(company_id=company_id)
        store = open_store(ctx)
        key = store.create_key(company_id, name)
        store.close()
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    company_id: Annotated[int | None, typer.Option(
        "--company-id", help="Only this company's keys.", show_default=False)] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """List keys (id, company, name, created, revoked); never the keys themselves.

    Example:  ahashdb keys list --company-id 7
    """
    with errors(ctx):
        check_ids(company_id=company_id)
        store = open_store(ctx)
        rows = store.keys(company_id)
        store.close()
    render(({**r, "created_at": str(r["created_at"]),
             "revoked_at": None if r["revoked_at"] is None else str(r["revoked_at"])}
            for r in rows), ("id", "company_id", "name", "created_at", "revoked_at"), fmt)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[int, typer.Argument(help="The key's id (from keys list).",
                                          show_default=False)],
) -> None:
    """Revoke a key: logins with it fail from the next transaction on.

    Example:  ahashdb keys revoke 3
    """
    with errors(ctx):
        check_ids(id=key_id)
        store = open_store(ctx)
        revoked = store.revoke_key(key_id)
        store.close()
        if not revoked:
            raise InvalidInput(f"key {key_id}: no such key, or already revoked")
    typer.echo(f"key {key_id} revoked")
