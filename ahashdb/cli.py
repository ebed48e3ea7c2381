"""The ``ahashdb`` command line: a thin layer over :class:`ahashdb.HashStore`.

Each command parses its options, makes one HashStore (or ingest) call and renders the
result. Errors become one ``error: …`` line on stderr and exit status 1 (``--debug`` shows
the traceback instead); usage errors exit 2.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from . import __version__, embedded
from .config import describe_target, redact, resolve_database_url
from .errors import AhashdbError, InvalidInput
from .hashes import ALGORITHMS, DEFAULT_MAX_DISTANCE, from_hex, to_hex
from .output import Format, render
from .store import SCHEMA_REVISION, HashStore, _check_id

_DEFAULTS = ", ".join(f"{n} for {a}" for a, n in DEFAULT_MAX_DISTANCE.items())

app = typer.Typer(
    name="ahashdb",
    help="Perceptual image hashes (aHash; also pHash, dHash, wHash) in PostgreSQL: ingest"
    " images, find look-alikes.\n\n"
    "Example:  ahashdb ingest photos/ --company-id 1 && ahashdb query new.jpg --company-id 1",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
server_app = typer.Typer(
    help="The embedded PostgreSQL (used when no --database-url is given).\n\n"
    "Example:  ahashdb server status",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")
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
            envvar="AHASHDB_DATABASE_URL",
            help="PostgreSQL URL, e.g. postgresql://user:pass@localhost:5432/ahashdb."
            " Default: the embedded server under the user's data directory.",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = State(database_url=database_url, debug=debug)


def _err(message: str) -> None:
    typer.echo(message, err=True)


@contextlib.contextmanager
def _errors(ctx: typer.Context) -> Iterator[None]:
    """Turn ahashdb's errors into one stderr line and exit 1 (tracebacks with --debug)."""
    state: State = ctx.obj
    try:
        yield
    except (AhashdbError, psycopg.Error) as exc:
        if state.debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.errors.QueryCanceled) and "timeout" in message:
            message += " (raise it with --timeout, 0 for none)"
        elif isinstance(exc, psycopg.OperationalError) and state.target:
            message = (f"lost the connection to PostgreSQL at {state.target} ({message});"
                       " every batch committed before it is stored, re-run to finish")
        _err(f"error: {message}")
        raise typer.Exit(1) from None


def _check_ids(**options: int | None) -> None:
    """Reject ids outside BIGINT by their option name (``company_id`` → ``--company-id``)."""
    for name, value in options.items():
        if value is not None:
            _check_id(f"--{name.replace('_', '-')}", value)


def _store(
    ctx: typer.Context, *, tenant: int | None = None, timeout: float | None = None
) -> HashStore:
    """The command's HashStore. ``tenant`` is the company the command works on (what
    Row-Level Security admits a restricted role to); ``timeout`` caps each statement."""
    store = HashStore(ctx.obj.database_url, tenant=tenant,
                      statement_timeout=timeout or None)
    ctx.obj.target = describe_target(store.url)
    return store


@dataclass
class _Failures:
    """How many inputs could not be hashed (each was reported as PATH: reason)."""

    count: int = 0


def _hash_images(
    paths: list[Path], workers: int | None, failures: _Failures, algorithm: str = "ahash"
) -> Iterator[tuple[str, int]]:
    """(path, hash) of each image, hashed in parallel when there are several; an image
    that cannot be hashed is reported on stderr and counted in ``failures``."""
    from .ingest import Item, hash_many

    items = (Item(path=str(p)) for p in paths)
    for item, h in hash_many(items, workers if len(paths) > 1 else 1, algorithm):
        if h is None:
            failures.count += 1
            _err(f"{item.path}: {item.error}")
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


# --- hash ------------------------------------------------------------------------------------


@app.command("hash")
def hash_cmd(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Image files to hash.", show_default=False,
                                                   readable=False)],
    fmt: FormatOpt = Format.table,
    workers: Annotated[int | None, typer.Option(help="Hashing processes (default: all cores).",
                                                show_default=False)] = None,
    algorithm: AlgorithmOpt = Algorithm.ahash,
) -> None:
    """Print the aHash (or --algorithm's hash) of images as 16 hex digits, the same as
    str(imagehash.average_hash(image)) (no database needed).

    \b
    Examples:
      ahashdb hash photo.jpg scans/*.png
      ahashdb hash photo.jpg --algorithm phash
    """
    failures = _Failures()

    def rows() -> Iterator[dict[str, Any]]:
        for path, h in _hash_images(files, workers, failures, algorithm.value):
            yield {"hash": to_hex(h), "path": path}

    with _errors(ctx):
        if fmt is Format.table:
            for row in rows():
                typer.echo(f"{row['hash']}  {row['path']}")
        else:
            render(rows(), ("hash", "path"), fmt)
    if failures.count:
        raise typer.Exit(1)


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
    with _errors(ctx):
        store = HashStore(ctx.obj.database_url, auto_migrate=False)
        current = store.schema_revision()
        if check:
            if current == SCHEMA_REVISION:
                typer.echo(f"schema is current (revision {current})")
                return
            _err(f"schema is at revision {current or 'none'}, this ahashdb needs"
                 f" {SCHEMA_REVISION}: run `ahashdb migrate`")
            raise typer.Exit(1)
        store.migrate()
        typer.echo(f"schema at revision {SCHEMA_REVISION} (was {current or 'none'})"
                   f" in {redact(store.url)}")
        store.close()


# --- ingest ----------------------------------------------------------------------------------


class _Progress:
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

    def __enter__(self) -> _Progress:
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

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            _err(line)


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Files, folders (recursive), globs, or - for paths on stdin.",
                       show_default=False),
    ] = None,
    company_id: CompanyId = None,
    meta_id: Annotated[int | None, typer.Option(
        "--meta-id", help="meta_id for every input (default: the file stem, 12345.jpg → 12345).",
        show_default=False)] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="CSV (with header) or JSON lines: path, meta_id[, company_id][, source]; relative"
        " paths are relative to the manifest.", show_default=False)] = None,
    hashes_file: Annotated[Path | None, typer.Option(
        "--hashes", help="Precomputed hashes (CSV/JSON lines: hash as 16 hex, meta_id"
        "[, company_id][, source]) instead of images.", show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(
        help="Hashing processes (default: all cores).", show_default=False)] = None,
    writers: Annotated[int, typer.Option(
        help="With --hashes: database sessions writing batches at once (the server's CPU"
        " maintains the indexes; 2 writers load about twice as fast on 2 cores).",
        min=1, max=64)] = 2,
    batch_size: Annotated[int | None, typer.Option(
        help="Rows per transaction [default: 1000 for images, 50000 with --hashes].",
        min=1, show_default=False)] = None,
    errors_file: Annotated[Path | None, typer.Option(
        "--errors", help="Also write failed inputs to this CSV (path, reason).",
        show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    algorithm: AlgorithmOpt = Algorithm.ahash,
) -> None:
    """Hash images and store them, skipping what is already stored.

    Each row records its algorithm and (for images hashed here) the imagehash and Pillow
    versions that made it; an object may hold one hash per algorithm (ingest again with
    another --algorithm).

    Exit status: 0 when every input was stored or already present, 1 when any failed
    (each failure is printed as PATH: reason). Re-running an interrupted ingest is safe.

    \b
    Examples:
      ahashdb ingest photos/ --company-id 1
      find /data -name '*.jpg' | ahashdb ingest - --company-id 1
      ahashdb ingest --manifest uploads.csv --company-id 1
      ahashdb ingest --hashes milvus_export.csv --company-id 1
      ahashdb ingest photos/ --company-id 1 --algorithm phash
    """
    from . import ingest as ing

    sources = sum(x is not None and x != [] for x in (paths or None, manifest, hashes_file))
    if sources != 1:
        raise typer.BadParameter("give PATH..., --manifest or --hashes (exactly one)")
    errors_out = None
    with _errors(ctx):
        if hashes_file is None and manifest is None and company_id is None:
            raise InvalidInput("--company-id is required (the tenant the images belong to)")
        if workers is not None and workers < 1:
            raise InvalidInput(f"--workers {workers}: expected 1 or more")
        _check_ids(company_id=company_id, meta_id=meta_id)
        store = _store(ctx, tenant=company_id)
        store.connection  # noqa: B018 - fail fast (unreachable, not migrated) before hashing
        total = len(paths) if paths and all(os.path.isfile(p) for p in paths) else None
        show = not quiet and sys.stderr.isatty()
        writer = None
        if errors_file is not None:
            errors_out = open(errors_file, "w", newline="", encoding="utf-8")  # noqa: SIM115
            writer = csv.writer(errors_out)
            writer.writerow(["path", "reason"])
        summary = None
        stop = threading.Event()
        previous_handler = None
        try:
            with _Progress(show, total) as progress:

                def on_sigint(signum: int, frame: object) -> None:
                    if stop.is_set():
                        raise KeyboardInterrupt  # the second Ctrl-C: abandon the open batch
                    stop.set()
                    progress.write("interrupted: storing what is hashed, then stopping"
                                   " (Ctrl-C again to stop at once)")

                if threading.current_thread() is threading.main_thread():
                    previous_handler = signal.signal(signal.SIGINT, on_sigint)

                def on_error(path: str, reason: str) -> None:
                    progress.write(f"{path}: {reason}")
                    if writer is not None:
                        writer.writerow([path, reason])

                if hashes_file is not None:
                    rows = ing.read_hash_rows(hashes_file, company_id=company_id)
                    summary = ing.ingest_hashes(store, rows, on_progress=progress.advance,
                                                stop=stop, algorithm=algorithm.value,
                                                writers=writers, batch_size=batch_size or 50_000)
                else:
                    if manifest is not None:
                        items = ing.items_from_manifest(manifest)
                    else:
                        items = ing.items_from_paths(paths or [], meta_id=meta_id)
                    summary = ing.ingest_files(
                        store, items, company_id=company_id, workers=workers,
                        batch_size=batch_size or 1000, on_error=on_error,
                        on_progress=progress.advance,
                        stop=stop, on_warning=lambda path, msg: progress.write(f"{path}: {msg}"),
                        algorithm=algorithm.value,
                    )
        except KeyboardInterrupt:
            _err("interrupted: every batch before this point is stored; re-run to finish")
            raise typer.Exit(130) from None
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if errors_out is not None:
                errors_out.close()
            store.close()
    _err(summary.line())
    if summary.interrupted:
        _err("interrupted: everything counted above is stored; run the same command again"
             " to finish")
        raise typer.Exit(130)
    if summary.failed:
        raise typer.Exit(1)


@app.command("import-milvus")
def import_milvus(
    ctx: typer.Context,
    uri: Annotated[str, typer.Option(
        help="Milvus server URL (http://host:19530) or a Milvus Lite .db file.",
        show_default=False)],
    collection: Annotated[str, typer.Option(help="The collection to import.",
                                            show_default=False)],
    vector_field: Annotated[str | None, typer.Option(
        help="The hash field: BINARY_VECTOR dim 64, or FLOAT_VECTOR dim 64 of 0/1"
        " (default: the collection's only vector field).", show_default=False)] = None,
    meta_field: Annotated[str, typer.Option(help="The meta_id field.")] = "meta_id",
    company_field: Annotated[str, typer.Option(help="The company_id field.")] = "company_id",
    company_id: Annotated[int | None, typer.Option(
        "--company-id", help="One company for every row, when the collection has no"
        " company field.", show_default=False)] = None,
    bit_order: Annotated[str, typer.Option(
        help="Bit order of binary vectors: msb (numpy.packbits of imagehash's array), lsb"
        " (Milvus's examples), or auto (decided from --sample images).")] = "msb",
    sample: Annotated[list[Path] | None, typer.Option(
        help="An image named <meta_id>.ext that is in the collection: checks (or with"
        " --bit-order auto, decides) the bit order; repeatable.", show_default=False,
        readable=False)] = None,
    audit: Annotated[int, typer.Option(
        help="Afterwards re-run N of the collection's own top-10 searches in Milvus and in"
        " ahashdb (exact Hamming) and report how many differ.", min=0)] = 0,
    batch_size: Annotated[int, typer.Option(help="Rows per transaction.", min=1)] = 10_000,
    token: Annotated[str | None, typer.Option(
        envvar="MILVUS_TOKEN", help="Milvus token (user:password), if the server needs one.",
        show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    algorithm: AlgorithmOpt = Algorithm.ahash,
) -> None:
    """Copy a Milvus collection's aHashes (or --algorithm's hashes), with meta_id and
    company_id, into ahashdb.

    Idempotent: re-running adds only what is missing. Needs pip install 'ahashdb[milvus]'.

    \b
    Examples:
      ahashdb import-milvus --uri http://milvus:19530 --collection images --audit 100
      ahashdb import-milvus --uri milvus.db --collection images --bit-order auto --sample 42.jpg
    """
    from . import milvus
    from .hashes import hash_image
    from .ingest import meta_id_from_stem

    with _errors(ctx):
        _check_ids(company_id=company_id)
        samples = []
        for path in sample or ():
            mid = meta_id_from_stem(str(path))
            if mid is None:
                raise InvalidInput(f"{path}: name a sample <meta_id>.ext")
            samples.append((mid, hash_image(path, algorithm.value)))
        store = _store(ctx, tenant=company_id)
        show = not quiet and sys.stderr.isatty()
        t0 = time.perf_counter()
        try:
            with _Progress(show, None) as progress:
                result = milvus.import_collection(
                    store, uri, collection, vector_field=vector_field, meta_field=meta_field,
                    company_field=None if company_id is not None else company_field,
                    company_id=company_id, bit_order=bit_order, samples=samples,
                    audit=audit, batch_size=batch_size, token=token,
                    on_progress=progress.advance, algorithm=algorithm.value)
        finally:
            store.close()
        seconds = time.perf_counter() - t0
        _err(f"{result.seen} rows from {collection}: {result.added} added,"
             f" {result.present} already present (bit order {result.bit_order},"
             f" {seconds:.1f} s, {result.seen / max(seconds, 1e-9):,.0f} rows/s)")
        if result.audit is not None:
            typer.echo(result.audit.line())


# --- query -----------------------------------------------------------------------------------


@app.command()
def query(
    ctx: typer.Context,
    images: Annotated[list[Path] | None, typer.Argument(
        help="Images to look for.", show_default=False, readable=False)] = None,
    hash_hex: Annotated[list[str] | None, typer.Option(
        "--hash", help="A hash (16 hex digits) to look for; repeatable.",
        show_default=False)] = None,
    meta_id: Annotated[int | None, typer.Option(
        "--meta-id", help="Use the stored hashes of this meta_id as the queries (its own rows"
        " are left out of the results).", show_default=False)] = None,
    company_id: CompanyId = None,
    all_companies: Annotated[bool, typer.Option(
        "--all-companies", help="Search every company (operators only).")] = False,
    max_distance: Annotated[int | None, typer.Option(
        "--max-distance", "-t", help="Largest Hamming distance (bits of 64) to return"
        f" [default: {_DEFAULTS}].", min=0, max=64, show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(
        help="At most this many rows per query.", min=0, show_default=False)] = None,
    nearest: Annotated[int | None, typer.Option(
        help="Return the K closest rows, whatever their distance.", min=0,
        show_default=False)] = None,
    orientations: Annotated[bool, typer.Option(
        "--orientations", help="Also match flipped and 90°/180°/270°-rotated copies (the"
        " 8 orientations of the hash grid); adds an orientation column.")] = False,
    timeout: Annotated[float, typer.Option(
        help="Cancel a search statement that runs longer than this many seconds (0: never).",
        min=0)] = 30.0,
    fmt: FormatOpt = Format.table,
    algorithm: AlgorithmOpt = Algorithm.ahash,
) -> None:
    """Find stored images that look like the given ones (exact Hamming search).

    Compares only hashes of one --algorithm (images given are hashed by it).

    Rows are sorted by distance, then id. Each has the query, id, company_id, meta_id,
    hash, distance and source.

    \b
    Examples:
      ahashdb query new.jpg --company-id 1
      ahashdb query --hash ffd7918181c9ffff --company-id 1 --max-distance 4 -f json
      ahashdb query --meta-id 42 --company-id 1 --nearest 5
      ahashdb query mirrored.jpg --company-id 1 --orientations
      ahashdb query new.jpg --company-id 1 --algorithm phash
    """
    given = sum(bool(x) for x in (images, hash_hex)) + (meta_id is not None)
    if given != 1:
        raise typer.BadParameter("give IMAGE..., --hash or --meta-id (exactly one)")
    if all_companies and company_id is not None:
        raise typer.BadParameter("give --company-id N or --all-companies, not both")
    with _errors(ctx):
        if company_id is None and not all_companies:
            raise InvalidInput("--company-id is required (or --all-companies to search every"
                               " company)")
        _check_ids(company_id=company_id, meta_id=meta_id)
        alg = algorithm.value
        if orientations and alg != "ahash":
            raise InvalidInput(f"--orientations works with --algorithm ahash only (a flip or"
                               f" rotation permutes aHash's grid of bits, not {alg}'s)")
        store = _store(ctx, tenant=company_id, timeout=timeout)
        queries: list[tuple[str, int, int | None]] = []  # (label, hash, id to leave out)
        failures = _Failures()
        if hash_hex:
            queries = [(h, from_hex(h), None) for h in hash_hex]
        elif meta_id is not None:
            if company_id is None:
                raise InvalidInput("--meta-id needs --company-id")
            stored = store.hashes_of(company_id=company_id, meta_id=meta_id, algorithm=alg)
            if not stored:
                raise InvalidInput(f"meta_id {meta_id}: no {alg} hash stored for company"
                                   f" {company_id}")
            queries = [(f"meta_id={meta_id}", from_hex(h), rid) for rid, h in stored]
        else:
            queries = [(path, h, None)
                       for path, h in _hash_images(images or [], None, failures, alg)]

        def rows() -> Iterator[dict[str, Any]]:
            for label, h, own_id in queries:
                extra = 1 if own_id is not None else 0
                if nearest is not None:
                    found = store.nearest(h, company_id=company_id, k=nearest + extra,
                                          all_companies=all_companies,
                                          orientations=orientations, algorithm=alg)
                else:
                    found = store.search(
                        h, company_id=company_id, max_distance=max_distance,
                        limit=None if limit is None else limit + extra,
                        all_companies=all_companies, orientations=orientations,
                        algorithm=alg)
                found = [m for m in found if m.id != own_id]
                cut = nearest if nearest is not None else limit
                for m in found[:cut] if cut is not None else found:
                    yield {"query": label, **m.as_dict()}

        render(rows(), (*MATCH_COLUMNS, "orientation") if orientations else MATCH_COLUMNS, fmt)
        store.close()
    if failures.count:
        raise typer.Exit(1)


# --- duplicates ------------------------------------------------------------------------------


@app.command()
def duplicates(
    ctx: typer.Context,
    company_id: Annotated[int, typer.Option("--company-id", help="The company to examine.",
                                            show_default=False)],
    max_distance: Annotated[int, typer.Option(
        "--max-distance", "-t", help="Largest distance (bits of 64) that links two images.",
        min=0, max=16)] = 4,
    pairs: Annotated[bool, typer.Option(
        "--pairs", help="Print every linked pair with its distance instead of groups.")
    ] = False,
    fmt: FormatOpt = Format.table,
    algorithm: AlgorithmOpt = Algorithm.ahash,
) -> None:
    """Groups of one company's stored images that look alike, largest group first.

    A group is connected: a~b and b~c put a, b and c together. Table and CSV print one row
    per member (group, size, id, meta_id, hash, distance to the group's first member,
    source); json and nl print one object per group with its members in a list. Exact.

    \b
    Examples:
      ahashdb duplicates --company-id 1
      ahashdb duplicates --company-id 1 --max-distance 2 --pairs -f csv
    """
    with _errors(ctx):
        _check_ids(company_id=company_id)
        store = _store(ctx, tenant=company_id)
        if pairs:
            render(({"id_a": x, "id_b": y, "distance": d}
                    for x, y, d in store.duplicate_pairs(company_id=company_id,
                                                         max_distance=max_distance,
                                                         algorithm=algorithm.value)),
                   ("id_a", "id_b", "distance"), fmt)
        elif fmt in (Format.json, Format.nl):
            found = store.duplicates(company_id=company_id, max_distance=max_distance,
                                     algorithm=algorithm.value)
            objects = ({"group": n, "size": len(g),
                        "members": [{k: v for k, v in m.as_dict().items()
                                     if k not in ("company_id", "orientation")} for m in g]}
                       for n, g in enumerate(found, 1))
            count = 0
            for count, obj in enumerate(objects, 1):
                if fmt is Format.nl:
                    typer.echo(json.dumps(obj))
                else:
                    typer.echo(("[" if count == 1 else ",\n ") + json.dumps(obj), nl=False)
            if fmt is Format.json:
                typer.echo("]" if count else "[]")
        else:
            found = store.duplicates(company_id=company_id, max_distance=max_distance,
                                     algorithm=algorithm.value)
            render(({"group": n, "size": len(g), **m.as_dict()}
                    for n, g in enumerate(found, 1) for m in g),
                   ("group", "size", "id", "meta_id", "hash", "distance", "source"), fmt)
        store.close()


# --- eval ------------------------------------------------------------------------------------


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    pairs_csv: Annotated[Path, typer.Argument(
        help="CSV of image_a, image_b, label (same/different); relative paths are relative"
        " to the CSV.", show_default=False, readable=False)],
    algorithm: Annotated[list[str] | None, typer.Option(
        "--algorithm", "-a", help="ahash, phash, dhash or whash; repeatable (default: all).",
        show_default=False)] = None,
    max_threshold: Annotated[int, typer.Option(
        help="Score thresholds 0 to this.", min=0, max=64)] = 24,
    fmt: FormatOpt = Format.table,
) -> None:
    """Precision, recall and F1 of "distance <= T" on your labelled pairs, per threshold and
    hash algorithm, and the threshold with the best F1 — pick T from your own images.

    No database needed. Images that cannot be hashed are reported and their pairs skipped
    (exit 1 at the end).

    Example:  ahashdb eval labelled_pairs.csv --algorithm ahash --algorithm phash
    """
    from . import evaluate

    failures = _Failures()
    with _errors(ctx):
        names = algorithm or list(evaluate.ALGORITHMS)
        for name in names:
            if name not in evaluate.ALGORITHMS:
                raise InvalidInput(f"--algorithm {name!r}: expected one of"
                                   f" {', '.join(evaluate.ALGORITHMS)}")
        pairs = evaluate.read_pairs(pairs_csv)
        reported: set[str] = set()

        def on_error(path: str, reason: str) -> None:
            if path not in reported:
                reported.add(path)
                failures.count += 1
                _err(f"{path}: {reason}")

        rows, chosen = [], []
        for name in names:
            measured = evaluate.distances(pairs, name, on_error)
            scores = evaluate.score(name, measured, max_threshold)
            top = evaluate.best(scores)
            chosen.append(top)
            rows += [{"algorithm": s.algorithm, "threshold": s.threshold,
                      "precision": round(s.precision, 4), "recall": round(s.recall, 4),
                      "f1": round(s.f1, 4), "tp": s.tp, "fp": s.fp, "fn": s.fn, "tn": s.tn,
                      "best": s is top} for s in scores]
        render(rows, ("algorithm", "threshold", "precision", "recall", "f1", "tp", "fp",
                      "fn", "tn", "best"), fmt)
        if fmt is Format.table:
            for top in chosen:
                typer.echo(f"{top.algorithm}: best threshold {top.threshold} (F1 {top.f1:.3f},"
                           f" precision {top.precision:.3f}, recall {top.recall:.3f}) on"
                           f" {top.tp + top.fp + top.fn + top.tn} of {len(pairs)} pairs")
    if failures.count:
        raise typer.Exit(1)


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
) -> None:
    """Delete one company's rows by meta_id or by row id; prints how many went.

    \b
    Examples:
      ahashdb delete --company-id 1 --meta-id 42
      ahashdb delete --company-id 1 --id 17 --id 18
    """
    if (meta_id is None) == (not ids):
        raise typer.BadParameter("give --meta-id or --id (exactly one)")
    with _errors(ctx):
        _check_ids(company_id=company_id, meta_id=meta_id)
        for i in ids or ():
            _check_ids(id=i)
        store = _store(ctx, tenant=company_id)
        n = store.delete(company_id=company_id, meta_id=meta_id, ids=ids or None)
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
    with _errors(ctx):
        _check_ids(company_id=company_id)
        store = _store(ctx, tenant=company_id)
        s = store.stats(company_id)
        store.close()
    if fmt in (Format.json, Format.nl):
        out = {**s, "companies": {str(k): v for k, v in s["companies"].items()}}
        typer.echo(json.dumps(out, indent=2 if fmt is Format.json else None))
        return
    if fmt is Format.csv:
        render(({"company_id": c, "rows": n} for c, n in s["companies"].items()),
               ("company_id", "rows"), fmt)
        return
    rows = s["rows"] or 1
    lines = [
        ("database", s["database"]),
        ("data directory", s["data_directory"] or "(server-managed)"),
        ("PostgreSQL", s["server_version"]),
        ("schema revision", s["schema_revision"]),
        ("rows", f"{s['rows']:,}"),
        ("companies", f"{len(s['companies']):,}"),
        ("algorithms", ", ".join(f"{a} {n:,}" for a, n in s["algorithms"].items()) or "none"),
        *(("hashed by", f"{h['algorithm']}: "
           + (f"imagehash {h['imagehash']}, Pillow {h['pillow']}, {h['hash_size']}x"
              f"{h['hash_size']}" if h["imagehash"] else "not recorded (imported hashes)")
           + f" — {h['rows']:,} rows") for h in s["hashed_by"]),
        ("all-zero hashes", f"{s['all_zero_hashes']:,}"),
        ("all-one hashes", f"{s['all_one_hashes']:,}"),
        ("low-information hashes", f"{s['low_information_hashes']:,}"
                                   " (blank or nearly uniform images)"),
        ("partitions", f"{s['partitions']} (hash by company_id)" if s["partitions"] > 1
         else "none"),
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
    with _errors(ctx):
        store = _store(ctx)
        t0 = time.perf_counter()
        before = store.partitions()
        store.partition(partitions)
        rows = store.count()
        store.close()
    typer.echo(f"image_hashes: {partitions} partition{'s' if partitions > 1 else ''}"
               f" (was {before}), {rows:,} rows, {time.perf_counter() - t0:.1f} s")


# --- rls -------------------------------------------------------------------------------------


@rls_app.command("enable")
def rls_enable(ctx: typer.Context) -> None:
    """Restrict every role but the table's owner to one company's rows.

    After this, an application role (not the owner, not a superuser, no BYPASSRLS) reads and
    writes only rows whose company_id equals the session setting ahashdb.company_id, even with
    hand-written SQL; with the setting unset it sees nothing. Run it as the table's owner.

    Example:  ahashdb rls enable
    In the application's session:  SET ahashdb.company_id = '7';
    """
    with _errors(ctx):
        store = _store(ctx)
        store.enable_row_level_security()
        store.close()
    typer.echo("row-level security on: roles other than the owner see only the company in"
               " ahashdb.company_id")


@rls_app.command("disable")
def rls_disable(ctx: typer.Context) -> None:
    """Turn row-level security off (every role with SELECT sees every company again).

    Example:  ahashdb rls disable
    """
    with _errors(ctx):
        store = _store(ctx)
        store.disable_row_level_security()
        store.close()
    typer.echo("row-level security off")


@rls_app.command("status")
def rls_status(ctx: typer.Context) -> None:
    """Say whether row-level security is on.

    Example:  ahashdb rls status
    """
    with _errors(ctx):
        store = _store(ctx)
        on = store.row_level_security()
        store.close()
    typer.echo("row-level security on" if on else "row-level security off")


# --- server ----------------------------------------------------------------------------------


@server_app.command("start")
def server_start(ctx: typer.Context) -> None:
    """Start the embedded server (it also starts on first use) and migrate its database.

    Example:  ahashdb server start
    """
    with _errors(ctx):
        store = HashStore(None)
        store.connection  # noqa: B018 - connects and migrates
        store.close()
        typer.echo(f"running: {redact(store.url)} (data in {embedded.pgdata_dir()})")


@server_app.command("stop")
def server_stop(ctx: typer.Context) -> None:
    """Stop the embedded server.

    Example:  ahashdb server stop
    """
    with _errors(ctx):
        stopped = embedded.stop()
    typer.echo("stopped" if stopped else "not running")


@server_app.command("status")
def server_status(ctx: typer.Context) -> None:
    """Where the embedded server keeps its data, whether it runs, and its URL.

    Example:  ahashdb server status
    """
    with _errors(ctx):
        st = embedded.status()
    typer.echo(f"data directory  {st.pgdata}")
    typer.echo(f"initialized     {'yes' if st.initialized else 'no'}")
    typer.echo(f"running         {'yes (pid ' + str(st.pid) + ')' if st.running else 'no'}")
    if st.url:
        typer.echo(f"url             {redact(st.url)}")
    if resolve_database_url(ctx.obj.database_url):
        typer.echo("note            --database-url / AHASHDB_DATABASE_URL is set, so commands"
                   " use that server, not this one")


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
