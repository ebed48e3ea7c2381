"""Commands that look after the database: migrate, delete, stats, partition, rls, server."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from .. import embedded
from ..config import database_source, redact
from ..connection import SCHEMA_REVISION
from ..errors import InvalidInput
from ..output import Format, render, render_object
from ..store import HashStore
from .common import (
    CompanyId,
    FormatOpt,
    app,
    check_ids,
    err,
    errors,
    open_store,
    server_app,
)

# --- migrate ---------------------------------------------------------------------------------


@app.command()
def migrate(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Only report; exit 1 when behind.")
    ] = False,
) -> None:
    """Create or upgrade the schema (tables, indexes, SQL functions) to the newest revision.

    An upgrade runs in one transaction and locks image_hashes while it runs. Those to
    revisions 0007 and 0010 each rewrite the table and rebuild its indexes: several seconds
    per million rows on a 2-core machine (python benchmarks/upgrade.py). The embedded
    database upgrades itself on first use by a newer ahashdb.

    Example:  ahashdb --database-url postgresql://localhost/ahashdb migrate
    """
    with errors(ctx):
        store = HashStore(ctx.obj.database_url, auto_migrate=False)
        current = store.schema_revision()
        if check:
            if current == SCHEMA_REVISION:
                typer.echo(f"schema is current (revision {current})")
                return
            err(f"schema is at revision {current or 'none'}, this ahashdb needs"
                 f" {SCHEMA_REVISION}: run `ahashdb migrate`")
            raise typer.Exit(1)
        store.migrate()
        typer.echo(f"schema at revision {SCHEMA_REVISION} (was {current or 'none'})"
                   f" in {redact(store.url)}")
        store.close()


# --- delete, stats ---------------------------------------------------------------------------


@app.command()
def delete(
    ctx: typer.Context,
    company_id: Annotated[int, typer.Option("--company-id", help="The company whose rows go.",
                                            show_default=False)],
    meta_id: Annotated[int | None, typer.Option(
        "--meta-id", help="Delete every hash of this meta_id (of every algorithm).",
        show_default=False)] = None,
    ids: Annotated[list[int] | None, typer.Option(
        "--id", help="Delete the row with this id; repeatable.", show_default=False)] = None,
    everything: Annotated[bool, typer.Option(
        "--all", help="Delete every row of the company (asks first; --yes to skip).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --all.")] = False,
) -> None:
    """Delete one company's rows by meta_id, by row id, or all of them; prints how many
    went.

    \b
    Examples:
      ahashdb delete --company-id 1 --meta-id 42
      ahashdb delete --company-id 1 --id 17 --id 18
      ahashdb delete --company-id 1 --all --yes
    """
    if (meta_id is not None) + bool(ids) + everything != 1:
        raise typer.BadParameter("give --meta-id, --id or --all (exactly one)")
    with errors(ctx):
        check_ids(company_id=company_id, meta_id=meta_id)
        for i in ids or ():
            check_ids(id=i)
        store = open_store(ctx, tenant=company_id)
        if everything and not yes:
            count = store.count(company_id)
            if not sys.stdin.isatty():
                raise InvalidInput(f"--all would delete {count:,} rows of company"
                                   f" {company_id}: confirm with --yes")
            if not typer.confirm(f"Delete all {count:,} rows of company {company_id}?"):
                raise typer.Exit(1)
        n = store.delete(company_id=company_id, meta_id=meta_id, ids=ids or None,
                         everything=everything)
        store.close()
    typer.echo(f"deleted {n} row{'s' if n != 1 else ''}")


@app.command()
def stats(
    ctx: typer.Context,
    company_id: CompanyId = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Rows per company and per algorithm, which imagehash/Pillow versions made them,
    table and index sizes, degenerate hashes, versions, data location.

    Example:  ahashdb stats --company-id 1
    """
    with errors(ctx):
        check_ids(company_id=company_id)
        store = open_store(ctx, tenant=company_id)
        s = store.stats(company_id)
        store.close()
    if fmt in (Format.json, Format.nl):
        render_object(s, fmt)
        return
    if fmt is Format.csv:
        render(({"company_id": c, "rows": n} for c, n in s["companies"].items()),
               ("company_id", "rows"), fmt)
        return
    rows = s["rows"] or 1
    lines = [
        ("database", f"{s['database']} — from {s['database_source']}"),
        ("data directory", s["data_directory"] or "(server-managed)"),
        ("PostgreSQL", s["server_version"]),
        ("schema revision", s["schema_revision"]),
        ("rows", f"{s['rows']:,}"),
        ("companies", f"{len(s['companies']):,}"),
        ("algorithms", ", ".join(f"{a} {n:,}" for a, n in s["algorithms"].items()) or "none"),
        *(("hashed by", f"{h['algorithm']}: "
           + (f"imagehash {h['imagehash']}, Pillow {h['pillow']}, {h['hash_size']}x"
              f"{h['hash_size']}" + (", JPEGs decoded at reduced scale (--fast)"
                                     if h["decode"] == "reduced" else "")
              if h["imagehash"] else "not recorded (imported hashes)")
           + f" — {h['rows']:,} rows") for h in s["hashed_by"]),
        ("all-zero hashes", f"{s['all_zero_hashes']:,}"),
        ("all-one hashes", f"{s['all_one_hashes']:,}"),
        ("low-information hashes", f"{s['low_information_hashes']:,}"
                                   " (blank or nearly uniform images)"),
        ("partitions", f"{s['partitions']} (hash by company_id)" if s["partitions"] > 1
         else "none"),
        *((f"rows on {node}", f"{n:,}") for node, n in s.get("citus_rows_per_node", {}).items()),
        ("table size", f"{s['table_bytes'] / 2**20:,.1f} MB"),
        ("index size", f"{s['index_bytes'] / 2**20:,.1f} MB"
                       f" ({s['index_bytes'] / rows:,.0f} bytes/row)"),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        typer.echo(f"{k.ljust(width)}  {v}")
    if s["companies"]:
        typer.echo("")
        render(({"company_id": c, "rows": n} for c, n in s["companies"].items()),
               ("company_id", "rows"), Format.table)


# --- partition -------------------------------------------------------------------------------


@app.command()
def partition(
    ctx: typer.Context,
    partitions: Annotated[int, typer.Argument(
        help="How many hash partitions by company_id (1: one plain table).", min=1,
        max=1024, show_default=False)],
) -> None:
    """Rebuild image_hashes hash-partitioned by company_id (or back to one table).

    One transaction: writers wait, readers of the old table finish first; ids, indexes,
    grants and row-level security carry over, and every SQL function works unchanged.
    See docs/scaling.md for when it pays.

    Example:  ahashdb partition 16
    """
    with errors(ctx):
        store = open_store(ctx)
        t0 = time.perf_counter()
        before = store.partitions()
        store.partition(partitions)
        rows = store.count()
        store.close()
    typer.echo(f"image_hashes: {partitions} partition{'s' if partitions > 1 else ''}"
               f" (was {before}), {rows:,} rows, {time.perf_counter() - t0:.1f} s")


# --- server ----------------------------------------------------------------------------------


@server_app.command("start")
def server_start(ctx: typer.Context) -> None:
    """Start the embedded server (it also starts on first use) and migrate its database.

    Example:  ahashdb server start
    """
    with errors(ctx):
        store = HashStore(None)
        store.connection  # noqa: B018 - connects and migrates
        store.close()
        typer.echo(f"running: {redact(store.url)} (data in {embedded.pgdata_dir()})")


@server_app.command("stop")
def server_stop(ctx: typer.Context) -> None:
    """Stop the embedded server.

    Example:  ahashdb server stop
    """
    with errors(ctx):
        stopped = embedded.stop()
    typer.echo("stopped" if stopped else "not running")


@server_app.command("status")
def server_status(ctx: typer.Context) -> None:
    """Where the embedded server keeps its data, whether it runs, and its URL.

    Example:  ahashdb server status
    """
    with errors(ctx):
        st = embedded.status()
    typer.echo(f"data directory  {st.pgdata}")
    typer.echo(f"initialized     {'yes' if st.initialized else 'no'}")
    typer.echo(f"running         {'yes (pid ' + str(st.pid) + ')' if st.running else 'no'}")
    if st.url:
        typer.echo(f"url             {redact(st.url)}")
    chosen, why = database_source(ctx.obj.database_url)
    if chosen is not None:
        typer.echo(f"note            commands use {redact(chosen)} (from {why}), not this"
                   " server")


# --- serve ------------------------------------------------------------------------------------


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    max_upload_mb: Annotated[float, typer.Option(
        help="Largest upload (and image fetched by URL), in MB; larger ones get 413.",
        min=0.001)] = 50.0,
    media_root: Annotated[list[Path] | None, typer.Option(
        "--media-root", help="A folder whose images thumbnails may be read from (rows'"
        " sources must lie inside one); repeatable. Without it thumbnails are placeholders.",
        show_default=False, readable=False)] = None,
    allow_private_urls: Annotated[bool, typer.Option(
        "--allow-private-urls", help="Let {\"url\": …} uploads fetch from private, loopback"
        " and link-local addresses (refused by default: server-side request forgery).")
    ] = False,
) -> None:
    """Serve the HTTP API and the review page (needs pip install 'ahashdb[service]').

    Clients send Authorization: Bearer KEY (keys from `ahashdb keys create`); each request
    is bound to the key's company inside PostgreSQL. POST /v1/images hashes an upload and
    stores it only if it is new (atomic); GET /v1/search, /v1/nearest, /v1/duplicates;
    DELETE /v1/images/ID; /review shows duplicate groups; OpenAPI docs at /docs. Run it as
    an application role (`ahashdb roles create`) with `ahashdb rls enable --strict`.
    One log line per request; SIGTERM lets requests in flight finish.

    \b
    Example:
      ahashdb serve --host 127.0.0.1 --port 8080 --media-root /data/images
    """
    with errors(ctx):
        try:
            from ..service import Settings
            from ..service import serve as run
        except ImportError as exc:
            raise InvalidInput(f"the service needs pip install 'ahashdb[service]' ({exc})"
                               ) from None
        store = open_store(ctx)
        store.connection  # noqa: B018 - reachable and migrated before listening
        url = store.url
        store.close()
        settings = Settings(url=url, max_upload=int(max_upload_mb * 2**20),
                            allow_private_urls=allow_private_urls,
                            media_roots=[str(p) for p in media_root or ()])
    err(f"serving on http://{host}:{port} (docs at /docs, review at /review)")
    run(settings, host=host, port=port)
