"""Commands that look for images: query, duplicates, eval."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InvalidInput
from ..evaluate import evaluate
from ..hashes import ALGORITHMS, from_hex
from ..output import Format, render
from .common import (
    DEFAULTS,
    MATCH_COLUMNS,
    Algorithm,
    AlgorithmOpt,
    CompanyId,
    EndpointOpt,
    Failures,
    FastOpt,
    FormatOpt,
    app,
    check_ids,
    err,
    errors,
    hash_images,
    open_store,
)

#: Fields a duplicate group's members leave out in JSON (the group has one company).
GROUP_LEAVES_OUT = ("company_id", "orientation")


# --- query -----------------------------------------------------------------------------------


@app.command()
def query(
    ctx: typer.Context,
    images: Annotated[list[str] | None, typer.Argument(
        help="Images to look for: files, or s3://, gs:// and https:// URLs.",
        show_default=False)] = None,
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
        f" [default: {DEFAULTS}].", min=0, max=64, show_default=False)] = None,
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
    fast: FastOpt = False,
    endpoint_url: EndpointOpt = None,
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
    with errors(ctx):
        if company_id is None and not all_companies:
            raise InvalidInput("--company-id is required (or --all-companies to search every"
                               " company)")
        check_ids(company_id=company_id, meta_id=meta_id)
        alg = algorithm.value
        if orientations and alg != "ahash":
            raise InvalidInput(f"--orientations works with --algorithm ahash only (a flip or"
                               f" rotation permutes aHash's grid of bits, not {alg}'s)")
        store = open_store(ctx, tenant=company_id, timeout=timeout)
        columns = (*MATCH_COLUMNS, "orientation") if orientations else MATCH_COLUMNS
        scope = {"all_companies": all_companies, "orientations": orientations,
                 "algorithm": alg}
        if meta_id is not None:
            if company_id is None:
                raise InvalidInput("--meta-id needs --company-id")
            found = store.similar_to_meta_id(
                meta_id, company_id=company_id, max_distance=max_distance, limit=limit,
                k=nearest, **scope)
            render(({"query": f"meta_id={meta_id}", **m.as_dict()} for _, m in found),
                   columns, fmt)
            store.close()
            return
        failures = Failures()
        if hash_hex:
            queries = [(h, from_hex(h)) for h in hash_hex]
        else:
            queries = list(hash_images(images or [], None, failures, alg, fast, endpoint_url))
        scope["company_id"] = company_id

        def rows() -> Iterator[dict[str, Any]]:
            for label, h in queries:
                if nearest is not None:
                    found = store.nearest(h, k=nearest, **scope)
                else:
                    found = store.search(h, max_distance=max_distance, limit=limit, **scope)
                for m in found:
                    yield {"query": label, **m.as_dict()}

        render(rows(), columns, fmt)
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
    with errors(ctx):
        check_ids(company_id=company_id)
        store = open_store(ctx, tenant=company_id)
        if pairs:
            found_pairs = store.duplicate_pairs(company_id=company_id,
                                                max_distance=max_distance,
                                                algorithm=algorithm.value)
            render(({"id_a": x, "id_b": y, "distance": d} for x, y, d in found_pairs),
                   ("id_a", "id_b", "distance"), fmt)
        else:
            groups = enumerate(store.duplicates(company_id=company_id,
                                                max_distance=max_distance,
                                                algorithm=algorithm.value), 1)
            if fmt in (Format.json, Format.nl):  # one object per group, members in a list
                render(({"group": n, "size": len(g), "members": [
                    {k: v for k, v in m.as_dict().items() if k not in GROUP_LEAVES_OUT}
                    for m in g]} for n, g in groups), ("group", "size", "members"), fmt)
            else:
                render(({"group": n, "size": len(g), **m.as_dict()} for n, g in groups
                        for m in g),
                       ("group", "size", "id", "meta_id", "hash", "distance", "source"), fmt)
        store.close()


# --- eval ------------------------------------------------------------------------------------


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    pairs_csv: Annotated[Path, typer.Argument(
        help="CSV of image_a, image_b, label (same/different); images are paths (relative"
        " to the CSV), s3:// or gs:// objects, or https:// URLs.", show_default=False,
        readable=False)],
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
    failures = Failures()
    reported: set[str] = set()

    def on_error(path: str, reason: str) -> None:
        if path not in reported:
            reported.add(path)
            failures.count += 1
            err(f"{path}: {reason}")

    with errors(ctx):
        for name in algorithm or ():
            if name not in ALGORITHMS:
                raise InvalidInput(f"--algorithm {name!r}: expected one of"
                                   f" {', '.join(ALGORITHMS)}")
        result = evaluate(pairs_csv, algorithm, max_threshold, on_error)
        render(result.rows(), ("algorithm", "threshold", "precision", "recall", "f1", "tp",
                               "fp", "fn", "tn", "best"), fmt)
        if fmt is Format.table:
            for name in result.best:
                typer.echo(result.summary(name))
    if failures.count:
        raise typer.Exit(1)
