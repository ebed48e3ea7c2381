"""``ahashdb citus …``: distribute the schema across a Citus cluster, and report on it."""

from __future__ import annotations

from typing import Annotated

import typer

from ..output import Format, render_object
from .common import FormatOpt, app, errors, open_store

citus_app = typer.Typer(
    help="Citus: shard the tables by company across a cluster of PostgreSQL servers (run on"
    " the coordinator, after `ahashdb migrate`).\n\n"
    "Example:  ahashdb --database-url postgresql://coordinator/ahashdb citus enable",
    no_args_is_help=True,
)
app.add_typer(citus_app, name="citus")


@citus_app.command("enable")
def citus_enable(
    ctx: typer.Context,
    shard_count: Annotated[int | None, typer.Option(
        "--shard-count", min=1, max=64000, show_default=False,
        help="Shards of image_hashes when it is first distributed [default: 32]; a few per"
        " worker core leaves room to rebalance onto new workers.")] = None,
) -> None:
    """Distribute a migrated database on a Citus coordinator (idempotent).

    Small shared tables become reference tables; image_hashes, ahash_sources and
    ahash_decisions are distributed by company_id in one shard group; ahash_search and
    ahash_nearest calls naming a company are delegated to the worker that holds it.
    Existing rows move to the workers. `ahashdb migrate` keeps it so.

    Example:  ahashdb citus enable --shard-count 32
    """
    with errors(ctx):
        store = open_store(ctx)
        changed = store.distribute(shard_count)
        status = store.citus_status()
        store.close()
    for line in changed:
        typer.echo(line)
    workers = sum(1 for n in status["nodes"] if n["role"] == "worker")
    typer.echo(f"{'distributed' if changed else 'already distributed'}: Citus"
               f" {status['citus']}, {status['shard_count']} shards of image_hashes on"
               f" {len(status['image_hashes_placements'])} node(s), {workers} worker(s)")


@citus_app.command("status")
def citus_status(ctx: typer.Context, fmt: FormatOpt = Format.table) -> None:
    """What is distributed: nodes, tables, delegated functions, and the shards of
    image_hashes per node (`ahashdb stats` gives rows per node).

    Example:  ahashdb citus status
    """
    with errors(ctx):
        store = open_store(ctx)
        s = store.citus_status()
        store.close()
    if fmt is not Format.table:
        render_object(s, fmt if fmt is not Format.csv else Format.json)
        return
    if s["citus"] is None:
        typer.echo("no Citus in this database (plain PostgreSQL)")
        return
    typer.echo(f"Citus {s['citus']}; image_hashes "
               + (f"distributed in {s['shard_count']} shards" if s["distributed"]
                  else "not distributed: run `ahashdb citus enable`"))
    for n in s["nodes"]:
        typer.echo(f"  node      {n['node']:<22} {n['role']}"
                   f"{'' if n['active'] else ', INACTIVE'}"
                   f"{'' if n['holds_shards'] or n['role'] == 'coordinator' else ', drained'}")
    for table, kind in s["tables"].items():
        typer.echo(f"  table     {table:<22} {kind}")
    for function, how in s["functions"].items():
        typer.echo(f"  function  {function:<22} {how}")
    for p in s["image_hashes_placements"]:
        typer.echo(f"  shards    {p['node']:<22} {p['shards']} ({p['bytes'] / 2**20:,.1f} MB)")
