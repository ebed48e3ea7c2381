"""Ingest: walk inputs, hash images in parallel, write batches through HashStore.insert_many.

Everything streams: paths are yielded as the walk finds them, hashing runs over a bounded
window of tasks, and rows go to the database batch by batch (each batch its own
transaction), so memory stays flat for millions of files and an interrupted ingest keeps
every finished batch. Re-running the same ingest adds nothing twice.
"""

from __future__ import annotations

import csv
import functools
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from .errors import AhashdbError, InvalidInput
from .hashes import (
    INT64_MAX,
    INT64_MIN,
    check_algorithm,
    from_hex,
    hash_image,
    is_low_information,
    to_signed,
)
from .objects import ObjectStore, clean_url, is_url
from .store import HashStore

__all__ = [
    "IngestSummary",
    "Item",
    "hash_many",
    "ingest_files",
    "ingest_hashes",
    "items_from_manifest",
    "items_from_paths",
    "read_hash_rows",
]

GLOB_CHARS = set("*?[")
NO_META_ID = "no meta_id: name the file <meta_id>.<ext>, or use --meta-id or --manifest"


@dataclass(slots=True)
class Item:
    """One input: a file to hash, where it goes, and what went wrong before hashing."""

    path: str
    meta_id: int | None = None
    company_id: int | None = None
    source: str | None = None
    error: str | None = None
    #: What identifies this version of the input (an ETag, or size and mtime): a re-run
    #: skips an input whose source was stored with the same marker.
    marker: str | None = None
    #: The bytes of an object fetched from a store or the web (None: read ``path``).
    data: bytes | None = None


@dataclass
class IngestSummary:
    """What an ingest did."""

    added: int = 0
    present: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    low_information: int = 0  # stored, but blank or nearly uniform (see is_low_information)
    near_duplicates: int = 0  # with if_new: not stored, a stored row is within the threshold

    @property
    def seen(self) -> int:
        """Inputs handled: added + already present + near duplicates + failed."""
        return self.added + self.present + self.near_duplicates + self.failed

    def line(self) -> str:
        """The one-line summary printed at the end."""
        rate = self.seen / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.seen} inputs{' before the interruption' if self.interrupted else ''}:"
            f" {self.added} added, {self.present} already present,"
            + (f" {self.near_duplicates} near-duplicates not stored," if self.near_duplicates
               else "")
            + f" {self.failed} failed"
            + (f", {self.low_information} low-information" if self.low_information else "")
            + f" ({self.seconds:.1f} s, {rate:.0f}/s)"
        )


def _parse_id(name: str, value: object) -> int:
    text = str(value).strip()
    try:
        number = int(text)
    except ValueError:
        raise InvalidInput(f"{name} {text!r}: expected an integer") from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidInput(f"{name} {number}: outside the BIGINT range")
    return number


# --- inputs ----------------------------------------------------------------------------------


def _walk(folder: str, follow_links: bool = False) -> Iterator[str]:
    """Files under ``folder``, sorted, hidden ones left out. Links to folders are not
    entered unless ``follow_links``; then each folder is entered once (by device and inode),
    so a link loop cannot repeat or trap the walk."""
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=follow_links):
        if follow_links:
            try:
                st = os.stat(root)
            except OSError:
                dirs[:] = []
                continue
            if (st.st_dev, st.st_ino) in seen:
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(root, name)


def _glob(pattern: str) -> Iterator[str]:
    """Paths matching ``pattern`` (``**`` spans folders), sorted; the ``**`` and ``*`` parts
    never pass through a link to a folder (Python's own recursive glob does, and repeats
    each file once per turn of a link loop)."""
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))
    anchor = Path(*parts[:fixed]) if fixed else Path()
    rest = str(Path(*parts[fixed:]))
    hidden_asked = any(part.startswith(".") for part in Path(rest).parts)
    for match in sorted(anchor.glob(rest)):
        relative = match.relative_to(anchor).parts
        if not hidden_asked and any(part.startswith(".") for part in relative):
            continue  # as glob and folder walks: hidden names only when asked for
        below = relative[:-1]
        if not any(anchor.joinpath(*below[:k + 1]).is_symlink() for k in range(len(below))):
            yield str(match)


def iter_paths(paths: Iterable[str], stdin: TextIO | None = None,
               follow_links: bool = False) -> Iterator[str]:
    """Expand files, folders (recursively), globs and ``-`` (paths on stdin, one a line).
    Links to folders inside a folder or a glob are not followed unless ``follow_links``
    (folders only: a glob never follows them)."""
    for p in paths:
        if p == "-":
            for line in stdin or sys.stdin:
                line = line.rstrip("\r\n")
                if line:
                    yield line
        elif os.path.isdir(p):
            yield from _walk(p, follow_links)
        elif not os.path.lexists(p) and GLOB_CHARS & set(p):
            matched = False
            for m in _glob(p):
                matched = True
                if os.path.isdir(m):
                    yield from _walk(m, follow_links)
                else:
                    yield m
            if not matched:
                yield p  # reported as missing, like any other missing path
        else:
            yield p


def meta_id_from_stem(path: str) -> int | None:
    """``12345.jpg`` → 12345; None when the stem is not an integer."""
    stem = Path(path).stem
    try:
        value = int(stem)
    except ValueError:
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


def items_from_paths(
    paths: Iterable[str], *, meta_id: int | None = None, stdin: TextIO | None = None,
    follow_links: bool = False, objects: ObjectStore | None = None,
    since: datetime | None = None, on_listed: Callable[[int], None] | None = None,
) -> Iterator[Item]:
    """Items for paths, folders, globs, ``-`` and URLs (``s3://bucket/prefix/``,
    ``gs://…``, ``https://…``, listed through ``objects``): meta_id from ``meta_id`` or
    else from an integer file stem; each with its change marker (size and mtime, or the
    object's ETag). ``since`` leaves out inputs modified before it. A URL's listing is
    complete before its first item, and ``on_listed`` gets its size then (a progress bar's
    total)."""
    for p in iter_paths(paths, stdin, follow_links):
        if is_url(p):
            if objects is None:
                objects = ObjectStore()
            listing = [listed for listed in objects.expand(p)
                       if since is None or listed.modified is None or listed.modified >= since]
            if on_listed is not None:
                on_listed(len(listing))
            for listed in listing:
                mid = meta_id if meta_id is not None else meta_id_from_stem(
                    urlsplit(listed.url).path)
                yield Item(path=listed.url, meta_id=mid, source=clean_url(listed.url),
                           marker=listed.marker)
            continue
        marker = None
        try:
            st = os.stat(p)
            if since is not None and st.st_mtime < since.timestamp():
                continue
            marker = f"size:{st.st_size}:mtime:{st.st_mtime_ns}"
        except (OSError, ValueError):
            pass  # reported when it is hashed
        mid = meta_id if meta_id is not None else meta_id_from_stem(p)
        yield Item(path=p, meta_id=mid, source=p, marker=marker)


def _parquet_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput(f"{path}: reading Parquet needs pip install pyarrow") from None
    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own kinds
        raise InvalidInput(f"{path}: not a Parquet file ({exc})") from None
    n = 0
    for batch in table.iter_batches(batch_size=50_000):
        for record in batch.to_pylist():
            n += 1
            yield n, record


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) from a CSV file with a header, JSON lines, or Parquet."""
    if path.suffix.lower() == ".parquet":
        yield from _parquet_records(path)
        return
    try:
        f = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None
    n = 0
    with f:
        try:
            head = f.read(4096)
            f.seek(0)
            is_json = (path.suffix.lower() in (".jsonl", ".ndjson", ".json")
                       or head.lstrip()[:1] == "{")
            if is_json:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InvalidInput(f"{path}:{n}: not valid JSON ({exc.msg})") from None
                    if not isinstance(record, dict):
                        raise InvalidInput(f"{path}:{n}: expected a JSON object")
                    yield n, record
            else:
                reader = csv.DictReader(f)
                if not reader.fieldnames:
                    raise InvalidInput(f"{path}: empty manifest (expected a CSV header)")
                for n, record in enumerate(reader, 2):
                    yield n, {str(k).strip(): v for k, v in record.items() if k is not None}
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path}: not UTF-8 text (byte {exc.start} of a read)") from None
        except csv.Error as exc:
            raise InvalidInput(f"{path}:{n + 1}: not valid CSV ({exc})") from None


COMPANY_COLUMN_REFUSED = ("has a company_id, and --company-id was given: pass"
                          " --allow-company-column to let rows choose their company")


def _record_ids(rec: dict[str, Any], company_id: int | None = None,
                allow_company_column: bool = False) -> tuple[int, int | None]:
    """(meta_id, company_id) of a manifest or hashes-file record: the row's company_id
    when it has one, else ``company_id``. A row's company_id beside a given ``company_id``
    is refused unless ``allow_company_column``: a file must not move rows into other
    tenants behind the caller's back."""
    if rec.get("meta_id") in (None, ""):
        raise InvalidInput("no meta_id")
    cid = rec.get("company_id")
    if cid in (None, ""):
        return _parse_id("meta_id", rec["meta_id"]), company_id
    if company_id is not None and not allow_company_column:
        raise InvalidInput(f"this row {COMPANY_COLUMN_REFUSED}")
    return _parse_id("meta_id", rec["meta_id"]), _parse_id("company_id", cid)


def items_from_manifest(manifest: str | os.PathLike, *, company_id: int | None = None,
                        allow_company_column: bool = False) -> Iterator[Item]:
    """Items from a manifest: columns ``path``, ``meta_id``, optional ``company_id``, ``source``.

    Relative paths are relative to the manifest's folder. A malformed row becomes an item
    with an error (reported per input), a malformed file raises :class:`InvalidInput`.
    """
    mpath = Path(manifest)
    base = mpath.parent
    for n, rec in _records(mpath):
        where = f"{mpath}:{n}"
        raw_path = rec.get("path")
        if not raw_path:
            yield Item(path=where, error="no path in this manifest row")
            continue
        full = str(raw_path) if os.path.isabs(str(raw_path)) or is_url(str(raw_path)) \
            else str(base / str(raw_path))
        try:
            mid, cid = _record_ids(rec, company_id, allow_company_column)
        except InvalidInput as exc:
            yield Item(path=full, error=f"{where}: {exc}")
            continue
        source = str(rec.get("source") or (clean_url(full) if is_url(full) else full))
        if "\x00" in source:
            yield Item(path=full, error=f"{where}: the path or source contains a NUL byte")
            continue
        yield Item(path=full, meta_id=mid, company_id=cid, source=source)


def read_hash_rows(
    path: str | os.PathLike, *, company_id: int | None = None,
    allow_company_column: bool = False,
) -> Iterator[dict[str, Any]]:
    """Rows of precomputed hashes (CSV/JSONL: ``hash`` as 16 hex, ``meta_id``, optional
    ``company_id`` and ``source``) for :meth:`HashStore.insert_many`; a row's company_id
    beside ``company_id`` is refused unless ``allow_company_column``."""
    p = Path(path)
    for n, rec in _records(p):
        where = f"{p}:{n}"
        try:
            h = from_hex(str(rec.get("hash", "")))
            mid, cid = _record_ids(rec, company_id, allow_company_column)
            if cid is None:
                raise InvalidInput("no company_id (add the column or pass --company-id)")
            source = rec.get("source") or None
            if source is not None and "\x00" in str(source):
                raise InvalidInput("source contains a NUL byte")
        except AhashdbError as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        yield {"hash": h, "company_id": cid, "meta_id": mid,
               "source": None if source is None else str(source)}


# --- hashing ---------------------------------------------------------------------------------


def _hash_item(item: Item, algorithm: str = "ahash",
               fast: bool = False) -> tuple[Item, int | None]:
    if item.error is not None:
        return item, None
    try:
        data, item.data = item.data, None  # the bytes are not sent back
        return item, hash_image(data if data is not None else item.path, algorithm, fast)
    except AhashdbError as exc:
        msg = str(exc)
        prefix = f"{item.path}: " if data is None else f"<{len(data)} bytes>: "
        item.error = msg[len(prefix):] if msg.startswith(prefix) else msg
        return item, None
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the batch
        item.error = f"{type(exc).__name__}: {exc}"
        return item, None


def _init_worker() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does


def hash_many(
    items: Iterable[Item], workers: int | None = None, algorithm: str = "ahash",
    fast: bool = False,
) -> Iterator[tuple[Item, int | None]]:
    """Hash items by ``algorithm`` on ``workers`` processes (default: all cores), streaming,
    order kept; ``fast``: reduced-scale JPEG decoding (see :func:`hash_image`).

    Yields ``(item, unsigned hash)`` or ``(item, None)`` with ``item.error`` set.
    """
    workers = workers or os.cpu_count() or 1
    work = functools.partial(_hash_item, algorithm=check_algorithm(algorithm), fast=fast)
    if workers <= 1:
        yield from map(work, items)
        return
    ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    # At most `window` items are out at a time: the pool's feeder thread blocks on the
    # semaphore, so memory stays flat however long the input is, and workers never idle
    # waiting for a whole window to finish.
    window = threading.Semaphore(64 * workers)
    closing = threading.Event()

    def throttled() -> Iterator[Item]:
        for item in items:
            window.acquire()
            if closing.is_set():
                return
            yield item

    with ctx.Pool(workers, initializer=_init_worker) as pool:
        try:
            for result in pool.imap(work, throttled(), chunksize=2):
                window.release()
                yield result
        finally:
            # Leaving early (stopped, or an error downstream): let the feeder thread out of
            # its wait, or the pool's shutdown would wait for it forever.
            closing.set()
            window.release()


# --- ingest ----------------------------------------------------------------------------------


def ingest_files(
    store: HashStore,
    items: Iterable[Item],
    *,
    company_id: int | None,
    workers: int | None = None,
    batch_size: int = 1000,
    on_error: Callable[[str, str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    on_warning: Callable[[str, str], None] | None = None,
    algorithm: str = "ahash",
    if_new: int | None = None,
    on_match: Callable[[str, list[Any]], None] | None = None,
    fast: bool = False,
    objects: ObjectStore | None = None,
    incremental: bool = True,
    downloads: int = 32,
) -> IngestSummary:
    """Hash every item by ``algorithm`` and store it; bad inputs are reported through
    ``on_error`` and skipped; low-information hashes are stored and reported through
    ``on_warning``. Rows record this process's imagehash and Pillow versions.

    With ``if_new=T`` each image is stored only if the company holds nothing within T
    bits of it (:meth:`HashStore.insert_if_new`, one atomic call per image, so concurrent
    ingests never store two near-duplicates); the matches of one that is not stored go to
    ``on_match(path, matches)``.

    With ``incremental`` (the default) an input whose source was stored before with the
    same change marker (its size and mtime, or an object's ETag) is counted as present
    without being read, downloaded or hashed; a changed one is hashed again and replaces
    its old row. URL inputs are downloaded ``downloads`` at a time through ``objects``
    while the hashing processes work.

    When ``stop`` is set (the CLI sets it on Ctrl-C), what has been hashed so far is stored
    as a last batch and the ingest ends with ``summary.interrupted``.
    """
    summary = IngestSummary()
    start = time.perf_counter()
    batch: list[tuple[int, int, int, str | None]] = []
    marks: list[tuple[int, str, str, int, int]] = []
    known: dict[int, dict[str, str]] = {}

    def record() -> None:
        if marks:
            store.record_sources(marks, algorithm)
            marks.clear()

    def flush() -> None:
        if batch:
            added = store.insert_many(batch, batch_size=len(batch), algorithm=algorithm,
                                      hashed_here=True, fast=fast)
            summary.added += added
            summary.present += len(batch) - added
            batch.clear()
        record()

    def unchanged(item: Item) -> bool:
        cid = item.company_id if item.company_id is not None else company_id
        if not incremental or cid is None or item.marker is None or item.source is None \
                or item.error is not None:
            return False
        if cid not in known:
            known[cid] = store.source_markers(cid, algorithm)
        return known[cid].get(item.source) == item.marker

    def to_hash() -> Iterator[Item]:
        for item in items:
            if unchanged(item):
                summary.present += 1
                if on_progress is not None:
                    on_progress(1)
                continue
            yield item

    pending: Iterable[Item] = to_hash()
    if objects is not None:
        pending = objects.prefetch(pending, downloads)
    try:
        for item, h in hash_many(pending, workers, algorithm, fast):
            cid = item.company_id if item.company_id is not None else company_id
            if h is None or cid is None or item.meta_id is None:
                if item.error:
                    reason = item.error
                elif item.meta_id is None:
                    reason = NO_META_ID
                else:
                    reason = "no company_id (use --company-id or a manifest column)"
                summary.failed += 1
                if on_error is not None:  # a URL without its credentials or signature
                    on_error(clean_url(item.path) if is_url(item.path) else item.path, reason)
            else:
                if is_low_information(h):
                    summary.low_information += 1
                    if on_warning is not None:
                        on_warning(clean_url(item.path) if is_url(item.path) else item.path,
                                   f"warning: low-information hash {h:016x} (a blank"
                                   " or nearly uniform image: it matches every other one)")
                if if_new is not None:
                    result = store.insert_if_new(to_signed(h), company_id=cid,
                                                 meta_id=item.meta_id, max_distance=if_new,
                                                 source=item.source, algorithm=algorithm,
                                                 hashed_here=True, fast=fast)
                    kept = True
                    if result.stored is not None:
                        summary.added += 1
                    elif any(m.meta_id == item.meta_id and m.distance == 0
                             for m in result.matches):
                        summary.present += 1
                    else:  # not stored: checked again next time, not skipped as present
                        kept = False
                        summary.near_duplicates += 1
                        if on_match is not None:
                            on_match(item.path, result.matches)
                else:
                    kept = True
                    batch.append((to_signed(h), cid, item.meta_id, item.source))
                if kept and item.marker is not None and item.source is not None:
                    marks.append((cid, item.source, item.marker, item.meta_id, to_signed(h)))
                if len(batch) >= batch_size or (if_new is not None and len(marks) >= batch_size):
                    flush()
            if on_progress is not None:
                on_progress(1)
            if stop is not None and stop.is_set():
                summary.interrupted = True
                break
        flush()
    finally:
        summary.seconds = time.perf_counter() - start
    return summary


def ingest_hashes(
    store: HashStore,
    rows: Iterable[dict[str, Any]],
    *,
    batch_size: int = 50_000,
    on_progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    algorithm: str = "ahash",
    writers: int = 1,
) -> IngestSummary:
    """Store precomputed ``algorithm`` hash rows (see :func:`read_hash_rows`) over
    ``writers`` database sessions; ``stop`` as in :func:`ingest_files`."""
    summary = IngestSummary()
    start = time.perf_counter()

    def until_stopped() -> Iterator[dict[str, Any]]:
        for row in rows:
            if stop is not None and stop.is_set():
                summary.interrupted = True
                return
            yield row

    def counted(added: int, seen: int) -> None:
        summary.added += added
        summary.present += seen - added
        if on_progress is not None:
            on_progress(seen)

    try:
        store.insert_many(until_stopped(), batch_size=batch_size, on_batch=counted,
                          algorithm=algorithm, writers=writers)
    finally:
        summary.seconds = time.perf_counter() - start
    return summary
