"""Bring aHashes in from a Milvus collection, and audit what its searches were returning.

Needs the optional extra: ``pip install 'ahashdb[milvus]'`` (pymilvus; Milvus Lite for local
files). A collection holds one 64-bit hash per entity, as a ``BINARY_VECTOR`` of dim 64
(8 bytes) or a ``FLOAT_VECTOR`` of dim 64 holding 0/1 (element 0 = imagehash's first array
element), with integer ``meta_id`` and ``company_id`` fields.

Bit order of binary vectors: data written as ``numpy.packbits(h.hash.flatten())`` is
most-significant-bit first (``msb``) — the same 8 bytes as :func:`ahashdb.to_bytes`;
Milvus's own examples pack bits least-significant first (``lsb``). The two orders are
mirror images of each row of the 8×8 grid, which no statistic of the hashes can tell apart
(a mirrored picture is as plausible as the original), so the order is either given, or
found from sample images whose hash is known (:func:`detect_bit_order`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import redact
from .errors import AhashdbError, InvalidInput
from .hashes import check_algorithm, from_bytes, hamming, to_signed
from .store import HashStore

__all__ = [
    "AuditResult",
    "MilvusImport",
    "detect_bit_order",
    "import_collection",
    "vector_to_hash",
]

BIT_ORDERS = ("msb", "lsb")
_REVERSED = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], dtype=np.uint8)


class MilvusError(AhashdbError):
    """Milvus is not installed, not reachable, or the collection is not what we expect."""


def _client(uri: str, token: str | None = None) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise MilvusError(
            "pymilvus is not installed: pip install 'ahashdb[milvus]'") from None
    # pymilvus logs a failed connection's URI, credentials included; the error below names
    # the server without them.
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("pymilvus")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return MilvusClient(uri=uri, token=token or "")
    except Exception as exc:  # noqa: BLE001 - pymilvus raises many kinds
        raise MilvusError(f"cannot open Milvus at {redact(uri)}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def vector_to_hash(vector: Any, bit_order: str = "msb") -> int:
    """The unsigned aHash of one Milvus vector (8 bytes, or 64 floats of 0/1)."""
    if isinstance(vector, list) and len(vector) == 1 and isinstance(vector[0], bytes | bytearray):
        vector = vector[0]  # pymilvus returns a binary vector wrapped in a list
    if isinstance(vector, bytes | bytearray | memoryview):
        data = bytes(vector)
        if len(data) != 8:
            raise InvalidInput(f"vector of {len(data)} bytes: expected 8 (BINARY_VECTOR dim 64)")
        if bit_order == "lsb":
            data = _REVERSED[np.frombuffer(data, dtype=np.uint8)].tobytes()
        elif bit_order != "msb":
            raise InvalidInput(f"bit order {bit_order!r}: expected msb or lsb")
        return from_bytes(data)
    values = np.asarray(vector, dtype=np.float64).ravel()
    if values.size != 64 or not np.isin(values, (0.0, 1.0)).all():
        raise InvalidInput("vector: expected 8 bytes, or 64 values that are all 0 or 1")
    return int.from_bytes(np.packbits(values.astype(bool)).tobytes(), "big")


def detect_bit_order(samples: Iterable[tuple[Any, int]]) -> str:
    """``msb`` or ``lsb``: the order under which every (vector, known hash) pair agrees."""
    samples = list(samples)
    if not samples:
        raise InvalidInput("no samples to detect the bit order from")
    for order in BIT_ORDERS:
        if all(vector_to_hash(v, order) == h for v, h in samples):
            return order
    raise InvalidInput(
        f"neither bit order matches the {len(samples)} sample(s): the vectors are not the"
        " samples' aHashes (wrong meta_id, another hash algorithm, or edited images)")


@dataclass
class _Fields:
    vector: str
    meta: str
    company: str | None
    kind: str  # "binary" or "float"
    metric: str | None


def _fields(client: Any, collection: str, vector_field: str | None, meta_field: str,
            company_field: str | None) -> _Fields:
    try:
        desc = client.describe_collection(collection)
    except Exception as exc:  # noqa: BLE001
        raise MilvusError(f"collection {collection!r}: {_first_line(exc)}") from None
    by_name = {f["name"]: f for f in desc["fields"]}
    from pymilvus import DataType

    vectors = [f for f in desc["fields"]
               if f["type"] in (DataType.BINARY_VECTOR, DataType.FLOAT_VECTOR)]
    if vector_field is None:
        if len(vectors) != 1:
            raise InvalidInput(f"collection {collection!r} has {len(vectors)} vector fields:"
                               " name one with --vector-field")
        vf = vectors[0]
    elif vector_field not in by_name:
        raise InvalidInput(f"collection {collection!r} has no field {vector_field!r}"
                           f" (fields: {', '.join(by_name)})")
    else:
        vf = by_name[vector_field]
    dim = int(vf.get("params", {}).get("dim", 0))
    if vf["type"] not in (DataType.BINARY_VECTOR, DataType.FLOAT_VECTOR) or dim != 64:
        raise InvalidInput(f"field {vf['name']!r}: expected a BINARY_VECTOR or FLOAT_VECTOR"
                           f" of dim 64, found {vf['type'].name} dim {dim}")
    for name in (meta_field, company_field):
        if name is not None and name not in by_name:
            raise InvalidInput(f"collection {collection!r} has no field {name!r}"
                               f" (fields: {', '.join(by_name)})")
    metric = None
    try:
        for index_name in client.list_indexes(collection, field_name=vf["name"]):
            metric = client.describe_index(collection, index_name).get("metric_type")
    except Exception:  # noqa: BLE001 - no index: searches are not possible, import still is
        metric = None
    kind = "binary" if vf["type"] == DataType.BINARY_VECTOR else "float"
    return _Fields(vf["name"], meta_field, company_field, kind, metric)


@dataclass
class AuditResult:
    """How the collection's own top-k searches compare with exact Hamming search."""

    queries: int = 0
    metric: str | None = None
    differing: int = 0  # queries whose top-k distances differ from the exact top-k
    missed: int = 0  # results Milvus returned that are farther than the exact k-th
    tie_only: int = 0  # queries whose results differ only among equal distances

    def line(self) -> str:
        """The one-line audit report."""
        return (
            f"audit: {self.queries} top-10 searches re-run; {self.differing} returned a"
            f" different top-10 from exact Hamming ({self.missed} results farther than the"
            f" true 10th, Milvus metric {self.metric}); {self.tie_only} more differ only in"
            " which of equally distant rows they list"
        )


@dataclass
class MilvusImport:
    """What an import did."""

    seen: int = 0
    added: int = 0
    bit_order: str = "msb"
    audit: AuditResult | None = None
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # (company, meta, hash)

    @property
    def present(self) -> int:
        """Rows that were already stored."""
        return self.seen - self.added


def _rows(client: Any, collection: str, f: _Fields, company_id: int | None, bit_order: str,
          batch_size: int, result: MilvusImport, audit_n: int, rng: random.Random,
          ) -> Iterator[tuple[int, int, int]]:
    outputs = [f.vector, f.meta] + ([f.company] if f.company else [])
    iterator = client.query_iterator(collection, batch_size=batch_size, output_fields=outputs)
    try:
        while True:
            batch = iterator.next()
            if not batch:
                break
            for rec in batch:
                h = vector_to_hash(rec[f.vector], bit_order)
                cid = company_id if f.company is None else rec[f.company]
                row = (h, int(cid), int(rec[f.meta]))
                result.seen += 1
                if audit_n:  # reservoir sample of the rows to audit with
                    if len(result.samples) < audit_n:
                        result.samples.append((row[1], row[2], h))
                    elif (j := rng.randrange(result.seen)) < audit_n:
                        result.samples[j] = (row[1], row[2], h)
                yield row
    finally:
        iterator.close()


def import_collection(
    store: HashStore,
    uri: str,
    collection: str,
    *,
    vector_field: str | None = None,
    meta_field: str = "meta_id",
    company_field: str | None = "company_id",
    company_id: int | None = None,
    bit_order: str = "msb",
    samples: Sequence[tuple[int, int]] = (),
    audit: int = 0,
    batch_size: int = 10_000,
    token: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    algorithm: str = "ahash",
) -> MilvusImport:
    """Copy every (hash, meta_id, company_id) of a Milvus collection into ``store``.

    Idempotent: rows already stored are skipped. ``bit_order`` is ``msb``, ``lsb`` or
    ``auto`` (decided from ``samples``: (meta_id, known unsigned hash) pairs).
    ``company_field=None`` takes ``company_id`` for every row. ``audit=N`` then re-runs N
    of the collection's own top-10 searches (a random sample of its rows as queries, each
    within its company) and compares them with exact Hamming top-10 from ahashdb.
    ``algorithm`` names the hash function that made the collection's vectors (and
    ``samples``' hashes); rows are stored as that algorithm's hashes.
    """
    algorithm = check_algorithm(algorithm)
    client = _client(uri, token)
    try:
        return _import(client, store, collection, vector_field, meta_field, company_field,
                       company_id, bit_order, samples, audit, batch_size, on_progress,
                       algorithm)
    except AhashdbError:
        raise
    except Exception as exc:
        from pymilvus.exceptions import MilvusException

        if isinstance(exc, MilvusException):
            raise MilvusError(f"Milvus, collection {collection!r}: {_first_line(exc)}") \
                from None
        raise
    finally:
        client.close()


def _import(client: Any, store: HashStore, collection: str, vector_field: str | None,
            meta_field: str, company_field: str | None, company_id: int | None,
            bit_order: str, samples: Sequence[tuple[int, int]], audit: int, batch_size: int,
            on_progress: Callable[[int], None] | None, algorithm: str) -> MilvusImport:
    if company_field is None and company_id is None:
        raise InvalidInput("the collection has no company field: give --company-id")
    f = _fields(client, collection, vector_field, meta_field, company_field)
    if f.kind == "float":
        bit_order = "msb"  # element order is the grid's order; no bytes to reorder
    elif samples or bit_order == "auto":
        found = _sample_vectors(client, collection, f, samples)
        detected = detect_bit_order(found)
        if bit_order not in ("auto", detected):
            raise InvalidInput(f"--bit-order {bit_order}: the samples say {detected}")
        bit_order = detected
    elif bit_order not in BIT_ORDERS:
        raise InvalidInput(f"--bit-order {bit_order!r}: expected msb, lsb or auto")
    result = MilvusImport(bit_order=bit_order)
    rows = _rows(client, collection, f, company_id, bit_order, batch_size, result, audit,
                 random.Random(7))

    def counted(added: int, seen: int) -> None:
        result.added += added
        if on_progress is not None:
            on_progress(seen)

    store.insert_many(((to_signed(h), c, m) for h, c, m in rows), batch_size=batch_size,
                      on_batch=counted, algorithm=algorithm)
    if audit:
        result.audit = _audit(client, collection, f, store, result.samples,
                              bit_order, algorithm)
    return result


def _sample_vectors(client: Any, collection: str, f: _Fields,
                    samples: Sequence[tuple[int, int]]) -> list[tuple[Any, int]]:
    if not samples:
        raise InvalidInput("--bit-order auto needs --sample IMAGE (a file named <meta_id>.ext"
                           " that is in the collection)")
    known = dict(samples)
    ids = ", ".join(str(int(m)) for m in known)
    recs = client.query(collection, filter=f"{f.meta} in [{ids}]",
                        output_fields=[f.vector, f.meta])
    found = [(r[f.vector], known[int(r[f.meta])]) for r in recs]
    if not found:
        raise InvalidInput(f"none of the sample meta_ids ({ids}) is in {collection!r}")
    return found


def _audit(client: Any, collection: str, f: _Fields, store: HashStore,
           samples: list[tuple[int, int, int]], bit_order: str, algorithm: str,
           k: int = 10) -> AuditResult:
    result = AuditResult(metric=f.metric)
    if f.metric is None:
        raise MilvusError(f"collection {collection!r} has no index on {f.vector!r}: nothing"
                          " to audit (Milvus cannot search it)")
    for company, _meta, h in samples:
        raw = h.to_bytes(8, "big")
        if f.kind == "float":
            query: Any = np.unpackbits(np.frombuffer(raw, dtype=np.uint8)).astype(float).tolist()
        else:
            query = _REVERSED[np.frombuffer(raw, dtype=np.uint8)].tobytes() \
                if bit_order == "lsb" else raw
        flt = f"{f.company} == {company}" if f.company else ""
        hits = client.search(collection, data=[query], limit=k, anns_field=f.vector,
                             filter=flt, search_params={"metric_type": f.metric},
                             timeout=120)[0]
        # Search results cannot carry a binary vector (Milvus Lite fails), so fetch them.
        found = client.get(collection, ids=[hit["id"] for hit in hits],
                           output_fields=[f.vector, f.meta], timeout=120) if hits else []
        theirs = []
        for rec in found:
            other = vector_to_hash(rec[f.vector], bit_order)
            theirs.append((hamming(h, other), int(rec[f.meta]), other))
        ours = [(m.distance, m.meta_id, int(m.hash, 16))
                for m in store.nearest(h, company_id=company, k=k, algorithm=algorithm)]
        result.queries += 1
        if sorted(d for d, _, _ in theirs) != [d for d, _, _ in ours]:
            result.differing += 1
            kth = ours[-1][0] if ours else 64
            result.missed += sum(d > kth for d, _, _ in theirs) + max(0, len(ours) - len(theirs))
        elif {(m, x) for _, m, x in theirs} != {(m, x) for _, m, x in ours}:
            result.tie_only += 1
    return result
