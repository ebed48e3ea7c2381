"""What every command shares: the Typer apps, global options, the error handler, the
store a command opens, option types and the progress bar."""

from __future__ import annotations

import contextlib
import enum
import os
import re
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
import typer

from .. import __version__
from ..checks import check_id
from ..config import describe_target, resolve_database_url, scrub
from ..errors import AhashdbError
from ..hashes import ALGORITHMS, DEFAULT_MAX_DISTANCE
from ..output import Format
from ..store import HashStore

DEFAULTS = ", ".join(f"{n} for {a}" for a, n in DEFAULT_MAX_DISTANCE.items())

app = typer.Typer(
    name="ahashdb",
    help="Perceptual image hashes (aHash; also pHash, dHash, wHash) in PostgreSQL: ingest"
    " images, find look-alikes.\n\n"
    "Example:  ahashdb ingest photos/ --company-id 1 && ahashdb query new.jpg --company-id 1",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=True,
    rich_markup_mode=None,
)
server_app = typer.Typer(
    help="The embedded PostgreSQL (used when no --database-url is given).\n\n"
    "Example:  ahashdb server status",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")
roles_app = typer.Typer(
    help="Database roles for applications, with least privilege.\n\n"
    "Example:  ahashdb roles create app_web --password-file app_web.secret",
    no_args_is_help=True,
)
app.add_typer(roles_app, name="roles")
rls_app = typer.Typer(
    help="Row-level security: keep each application role inside one company's rows.\n\n"
    "Example:  ahashdb rls enable",
    no_args_is_help=True,
)
app.add_typer(rls_app, name="rls")

MATCH_COLUMNS = ("query", "id", "company_id", "meta_id", "hash", "distance", "source")


@dataclass
class State:
    """Options shared by every command."""

    database_url: str | None = None
    debug: bool = False
    target: str | None = None  # host:port/db of the open store, for error lines
    #: Other URLs given on the command line (a Milvus URI): their passwords stay out of output.
    urls: list[str] = field(default_factory=list)
    #: Secrets given whole (a Milvus token).
    secrets: list[str] = field(default_factory=list)

    def scrub(self, text: str) -> str:
        """``text`` without any password of the database URL, :attr:`urls` or
        :attr:`secrets`."""
        for url in (self.database_url or resolve_database_url(None), *self.urls):
            text = scrub(text, url)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ahashdb {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="PostgreSQL URL, e.g. postgresql://user:pass@localhost:5432/ahashdb."
            " Default: $AHASHDB_DATABASE_URL, else libpq's $PGHOST/$PGPORT/$PGDATABASE/"
            "$PGUSER/$PGSERVICE/$PGPASSFILE when any is set, else the embedded server under"
            " the user's data directory.",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    max_pixels: Annotated[int | None, typer.Option(
        "--max-pixels", envvar="AHASHDB_MAX_PIXELS", min=1,
        help="Refuse images larger than this many pixels before decoding them (decoding"
        " takes 3-4 bytes a pixel per hashing process) [default: 64000000].",
        show_default=False)] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if max_pixels is not None:  # read by every hashing process, workers included
        os.environ["AHASHDB_MAX_PIXELS"] = str(max_pixels)
    ctx.obj = State(database_url=database_url, debug=debug)


def err(message: str) -> None:
    typer.echo(message, err=True)


@contextlib.contextmanager
def errors(ctx: typer.Context) -> Iterator[None]:
    """Turn ahashdb's errors into one stderr line and exit 1 (tracebacks with --debug)."""
    state: State = ctx.obj
    try:
        yield
    except (AhashdbError, psycopg.Error) as exc:
        if state.debug:  # the traceback, with every secret this run was given taken out
            err(state.scrub(traceback.format_exc().rstrip()))
            raise typer.Exit(1) from None
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.errors.QueryCanceled) and "timeout" in message:
            message += " (raise it with --timeout, 0 for none)"
        elif (node := _citus_node(message)) is not None:
            message = (f"Citus worker {node} is unreachable: the rows of the companies it"
                       " holds cannot be read or written now (companies on other workers"
                       f" still answer; nothing half-written is kept) — {message}")
        elif isinstance(exc, psycopg.OperationalError) and state.target:
            message = (f"lost the connection to PostgreSQL at {state.target} ({message});"
                       " every batch committed before it is stored, re-run to finish")
        err(f"error: {state.scrub(message)}")
        raise typer.Exit(1) from None


def _citus_node(message: str) -> str | None:
    """The node in Citus's "connection to the remote node user@host:port failed", if any."""
    match = re.search(r"connection to the remote node (?:\S+@)?(\S+?) failed", message)
    return match.group(1) if match else None


def check_ids(**options: int | None) -> None:
    """Reject ids outside BIGINT by their option name (``company_id`` → ``--company-id``)."""
    for name, value in options.items():
        if value is not None:
            check_id(f"--{name.replace('_', '-')}", value)


def open_store(
    ctx: typer.Context, *, tenant: int | None = None, timeout: float | None = None
) -> HashStore:
    """The command's HashStore. ``tenant`` is the company the command works on (what
    Row-Level Security admits a restricted role to); ``timeout`` caps each statement."""
    store = HashStore(ctx.obj.database_url, tenant=tenant,
                      statement_timeout=timeout or None)
    ctx.obj.target = describe_target(store.url)
    return store


@dataclass
class Failures:
    """How many inputs could not be hashed (each was reported as PATH: reason)."""

    count: int = 0


EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint-url", help="An S3-compatible store's endpoint (MinIO, Ceph, Aliyun OSS)"
    " for s3:// inputs [default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS].",
    show_default=False)]

FastOpt = Annotated[bool, typer.Option(
    "--fast", help="Decode JPEGs at reduced scale: several times faster on camera-size"
    " photos; an aHash, dHash or wHash may differ from imagehash's by a bit or two, a pHash"
    " by many more (stored rows are marked, see stats).")]


def hash_images(
    paths: list[str], workers: int | None, failures: Failures, algorithm: str = "ahash",
    fast: bool = False, endpoint_url: str | None = None,
) -> Iterator[tuple[str, int]]:
    """(path, hash) of each image (files, or object-store and web URLs, fetched many at a
    time), hashed in parallel when there are several; an image that cannot be hashed is
    reported on stderr and counted in ``failures``."""
    from ..ingest import Item, hash_many
    from ..objects import ObjectStore, is_url

    objects = ObjectStore(endpoint_url) if any(is_url(p) for p in paths) else None

    def expanded() -> Iterator[Item]:
        for p in paths:
            if objects is not None and is_url(p):
                yield from (Item(path=listed.url) for listed in objects.expand(p))
            else:
                yield Item(path=p)

    items: Iterator[Item] = expanded()
    if objects is not None:
        items = objects.prefetch(items)
    for item, h in hash_many(items, workers if len(paths) > 1 else 1, algorithm, fast):
        if h is None:
            failures.count += 1
            err(f"{item.path}: {item.error}")
        else:
            yield item.path, h


CompanyId = Annotated[
    int | None,
    typer.Option("--company-id", help="The tenant (company) the rows belong to, e.g. 1.",
                 show_default=False),
]
FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="Output format: table, json, nl or csv.")
]
Algorithm = enum.Enum("Algorithm", {name: name for name in ALGORITHMS}, type=str)
AlgorithmOpt = Annotated[
    Algorithm, typer.Option(
        "--algorithm", "-a", help="The hash: ahash (imagehash.average_hash), phash, dhash or"
        " whash (imagehash's, 64 bits each). Rows of one algorithm are only ever compared"
        " with queries of the same one.")
]


class Progress:
    """A rich progress bar on stderr, or nothing (the null object) when quiet or piped."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._bar: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("ingest"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._task = self._bar.add_task("ingest", total=total, rate="")
        self._done = 0
        self._t0 = 0.0

    def __enter__(self) -> Progress:
        self._t0 = time.perf_counter()
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: int) -> None:
        if self._bar is None:
            return
        self._done += n
        rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
        self._bar.update(self._task, advance=n, rate=f"{rate:,.0f} files/s")

    def add_total(self, n: int) -> None:
        """Count ``n`` more inputs in the total (a bucket's listing, once it is done)."""
        if self._bar is not None and self._bar.tasks[0].total is not None:
            self._bar.update(self._task, total=self._bar.tasks[0].total + n)

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            err(line)
