"""Commands that move hashes in and out: hash, ingest, import-milvus, export."""

from __future__ import annotations

import csv
import enum
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InvalidInput
from ..hashes import to_hex
from ..objects import is_url
from ..output import Format, render
from .common import (
    Algorithm,
    AlgorithmOpt,
    CompanyId,
    EndpointOpt,
    Failures,
    FastOpt,
    FormatOpt,
    Progress,
    app,
    check_ids,
    err,
    errors,
    hash_images,
    open_store,
)

# --- hash ------------------------------------------------------------------------------------


@app.command("hash")
def hash_cmd(
    ctx: typer.Context,
    files: Annotated[list[str], typer.Argument(
        help="Image files, or s3://, gs:// and https:// URLs, to hash.", show_default=False)],
    fmt: FormatOpt = Format.table,
    workers: Annotated[int | None, typer.Option(help="Hashing processes (default: all cores).",
                                                show_default=False)] = None,
    algorithm: AlgorithmOpt = Algorithm.ahash,
    fast: FastOpt = False,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Print the aHash (or --algorithm's hash) of images as 16 hex digits, the same as
    str(imagehash.average_hash(image)) (no database needed).

    \b
    Examples:
      ahashdb hash photo.jpg scans/*.png
      ahashdb hash photo.jpg --algorithm phash
    """
    failures = Failures()

    def rows() -> Iterator[dict[str, Any]]:
        for path, h in hash_images(files, workers, failures, algorithm.value, fast,
                                   endpoint_url):
            yield {"hash": to_hex(h), "path": path}

    with errors(ctx):
        if fmt is Format.table:
            for row in rows():
                typer.echo(f"{row['hash']}  {row['path']}")
        else:
            render(rows(), ("hash", "path"), fmt)
    if failures.count:
        raise typer.Exit(1)


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
    fast: FastOpt = False,
    endpoint_url: EndpointOpt = None,
    timeout: Annotated[float, typer.Option(
        help="Give up on an object after this many seconds, retries of transient errors"
        " included (a web URL: on each try, retried with backoff).", min=0.1)] = 60.0,
    downloads: Annotated[int, typer.Option(
        help="Objects downloaded at once from a store or the web.", min=1, max=512)] = 32,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only inputs modified since then: an ISO date or time"
        " (2026-11-01, 2026-11-01T12:00Z) or an age (36h, 7d).", show_default=False)] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Read and hash every input, even those stored before with the same"
        " size and modification time (or ETag).")] = False,
    follow_links: Annotated[bool, typer.Option(
        "--follow-links", help="Enter links to folders inside the folders given (each folder"
        " once, so link loops end). By default they are skipped; globs never follow them.")
    ] = False,
    if_new: Annotated[int | None, typer.Option(
        "--if-new", help="Store an image only if the company holds nothing within this many"
        " bits of it (atomic: concurrent ingests never both store a near-duplicate); each"
        " one not stored is printed with its closest match.", min=0, max=64,
        show_default=False)] = None,
    allow_company_column: Annotated[bool, typer.Option(
        "--allow-company-column", help="With --company-id: let a manifest's or hashes"
        " file's company_id column put rows in other companies (refused by default).")
    ] = False,
) -> None:
    """Hash images and store them, skipping what is already stored.

    Inputs are files, folders, globs, - (paths on stdin), and with pip install
    'ahashdb[objects]' s3://bucket/prefix/ (image files under it), s3://bucket/key and
    https:// URLs (downloaded --downloads at a time; --endpoint-url for MinIO, Ceph, OSS;
    credentials and region from the AWS environment variables or profile).

    A re-run reads, downloads and hashes only inputs that are new or changed since they
    were stored (by size and modification time, or an object's ETag); the others count as
    already present. A changed input is hashed again and its new hash replaces its old row.
    --full reads everything; --since limits a scheduled run to recent inputs.

    Each row records its algorithm and (for images hashed here) the imagehash and Pillow
    versions that made it; an object may hold one hash per algorithm (ingest again with
    another --algorithm).

    Exit status: 0 when every input was stored or already present, 1 when any failed
    (each failure is printed as PATH: reason). Re-running an interrupted ingest is safe.

    \b
    Examples:
      ahashdb ingest photos/ --company-id 1
      ahashdb ingest s3://shop-uploads/2026/ --company-id 1 --since 1d
      find /data -name '*.jpg' | ahashdb ingest - --company-id 1
      ahashdb ingest --manifest uploads.csv --company-id 1
      ahashdb ingest --hashes milvus_export.csv --company-id 1
      ahashdb ingest photos/ --company-id 1 --algorithm phash
    """
    from .. import ingest as ing

    sources = sum(x is not None and x != [] for x in (paths or None, manifest, hashes_file))
    if sources != 1:
        raise typer.BadParameter("give PATH..., --manifest or --hashes (exactly one)")
    from ..objects import ObjectStore

    errors_out = None
    objects = ObjectStore(endpoint_url, timeout=timeout)
    with errors(ctx):
        if hashes_file is None and manifest is None and company_id is None:
            raise InvalidInput("--company-id is required (the tenant the images belong to)")
        if if_new is not None and hashes_file is not None:
            raise InvalidInput("--if-new works with images, not --hashes")
        if workers is not None and workers < 1:
            raise InvalidInput(f"--workers {workers}: expected 1 or more")
        check_ids(company_id=company_id, meta_id=meta_id)
        store = open_store(ctx, tenant=company_id)
        store.connection  # noqa: B018 - fail fast (unreachable, not migrated) before hashing
        # Files count one each, and a bucket or URL what its listing finds (added when the
        # listing is done); a folder or stdin leaves the total open.
        total = sum(not is_url(p) for p in paths) if paths and all(
            is_url(p) or os.path.isfile(p) for p in paths) else None
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
            with Progress(show, total) as progress:

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
                    rows = ing.read_hash_rows(hashes_file, company_id=company_id,
                                              allow_company_column=allow_company_column)
                    summary = ing.ingest_hashes(store, rows, on_progress=progress.advance,
                                                stop=stop, algorithm=algorithm.value,
                                                writers=writers, batch_size=batch_size or 50_000)
                else:
                    if manifest is not None:
                        items = ing.items_from_manifest(
                            manifest, company_id=company_id,
                            allow_company_column=allow_company_column)
                    else:
                        items = ing.items_from_paths(paths or [], meta_id=meta_id,
                                                     follow_links=follow_links,
                                                     objects=objects,
                                                     since=parse_since(since),
                                                     on_listed=progress.add_total)
                    summary = ing.ingest_files(
                        store, items, company_id=company_id, workers=workers,
                        batch_size=batch_size or 1000, on_error=on_error,
                        on_progress=progress.advance,
                        stop=stop, on_warning=lambda path, msg: progress.write(f"{path}: {msg}"),
                        algorithm=algorithm.value, if_new=if_new, fast=fast,
                        objects=objects, incremental=not full, downloads=downloads,
                        on_match=lambda path, found: progress.write(
                            f"{path}: not stored, within {found[0].distance} bits of id"
                            f" {found[0].id} (meta_id {found[0].meta_id})"),
                    )
        except KeyboardInterrupt:
            err("interrupted: every batch before this point is stored; re-run to finish")
            raise typer.Exit(130) from None
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if errors_out is not None:
                errors_out.close()
            store.close()
    err(summary.line())
    if summary.interrupted:
        err("interrupted: everything counted above is stored; run the same command again"
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
    from .. import milvus
    from ..hashes import hash_image
    from ..ingest import meta_id_from_stem

    ctx.obj.urls.append(uri)
    ctx.obj.secrets += [token] if token else []
    with errors(ctx):
        check_ids(company_id=company_id)
        samples = []
        for path in sample or ():
            mid = meta_id_from_stem(str(path))
            if mid is None:
                raise InvalidInput(f"{path}: name a sample <meta_id>.ext")
            samples.append((mid, hash_image(path, algorithm.value)))
        store = open_store(ctx, tenant=company_id)
        show = not quiet and sys.stderr.isatty()
        t0 = time.perf_counter()
        try:
            with Progress(show, None) as progress:
                result = milvus.import_collection(
                    store, uri, collection, vector_field=vector_field, meta_field=meta_field,
                    company_field=None if company_id is not None else company_field,
                    company_id=company_id, bit_order=bit_order, samples=samples,
                    audit=audit, batch_size=batch_size, token=token,
                    on_progress=progress.advance, algorithm=algorithm.value)
        finally:
            store.close()
        seconds = time.perf_counter() - t0
        err(f"{result.seen} rows from {collection}: {result.added} added,"
             f" {result.present} already present (bit order {result.bit_order},"
             f" {seconds:.1f} s, {result.seen / max(seconds, 1e-9):,.0f} rows/s)")
        if result.audit is not None:
            typer.echo(result.audit.line())


def parse_since(text: str | None) -> datetime | None:
    """``--since``: an ISO date or time (UTC when no zone is given) or an age (36h, 7d)."""
    if text is None:
        return None
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[:-1].replace(".", "", 1).isdigit() and text[-1:] in units:
        return datetime.now(UTC) - timedelta(seconds=float(text[:-1]) * units[text[-1]])
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--since {text!r}: expected an ISO date or time, or an age"
                           " such as 36h or 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- export ------------------------------------------------------------------------------------


class ExportFormat(enum.StrEnum):
    """What export writes: CSV, JSON lines, or Parquet (needs pyarrow)."""

    csv = "csv"
    nl = "nl"
    parquet = "parquet"


@app.command()
def export(
    ctx: typer.Context,
    company_id: Annotated[int, typer.Option("--company-id", help="The company to export.",
                                            show_default=False)],
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", "-f", help="csv, nl (JSON lines) or parquet (needs pip install pyarrow).")
    ] = ExportFormat.csv,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here instead of stdout (parquet needs a file).",
        show_default=False, writable=False)] = None,
    algorithm: AlgorithmOpt = Algorithm.ahash,
) -> None:
    """Stream one company's hashes (hash, meta_id, source) of one algorithm, in id order,
    in a form `ahashdb ingest --hashes` reads back (into another database or company).

    \b
    Examples:
      ahashdb export --company-id 7 -o company7.csv
      ahashdb --database-url postgresql://new/ahashdb ingest --hashes company7.csv --company-id 7
      ahashdb export --company-id 7 --format parquet -o company7.parquet
    """
    if fmt is ExportFormat.parquet and output is None:
        raise typer.BadParameter("parquet needs --output FILE")
    with errors(ctx):
        check_ids(company_id=company_id)
        store = open_store(ctx, tenant=company_id)
        rows = ({"hash": h, "meta_id": m, "source": s}
                for h, m, s in store.export(company_id=company_id, algorithm=algorithm.value))
        columns = ("hash", "meta_id", "source")
        try:
            if fmt is ExportFormat.parquet:
                n = _write_parquet(rows, output)
            elif output is not None:
                with open(output, "w", encoding="utf-8", newline="") as out:
                    n = _write_text(rows, columns, fmt, out)
            else:
                n = _write_text(rows, columns, fmt, sys.stdout)
        finally:
            store.close()
    err(f"exported {n:,} {algorithm.value} rows of company {company_id}")


def _write_text(rows: Iterator[dict[str, Any]], columns: tuple[str, ...], fmt: ExportFormat,
                out: Any) -> int:
    """CSV or JSON lines, values exactly as stored: an export is data for another
    database, not a sheet for people (where render() defuses formula-like cells)."""
    if fmt is ExportFormat.nl:
        return render(rows, columns, Format.nl, out)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
        n += 1
    out.flush()
    return n


def _write_parquet(rows: Iterator[dict[str, Any]], path: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput("--format parquet needs pip install pyarrow") from None
    schema = pa.schema([("hash", pa.string()), ("meta_id", pa.int64()),
                        ("source", pa.string())])
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        while batch := list(itertools.islice(rows, 100_000)):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    return n
