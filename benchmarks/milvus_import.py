"""Import a Milvus Lite collection of seed-style rows into ahashdb, verify it, audit it.

    python benchmarks/milvus_import.py                 # 100,000 rows, embedded server
    python benchmarks/milvus_import.py --rows 20000 --metric JACCARD

Needs the milvus extra (pip install '.[milvus]'). Writes N aHash-like clustered rows, 10
companies, as the seed scripts do (BINARY_VECTOR dim 64 = numpy.packbits of the 8×8
array, fields meta_id, company_id, index BIN_FLAT with --metric) into a Milvus Lite file,
imports them with ahashdb.milvus.import_collection into a scratch database
(ahashdb_milvus, dropped at the end), checks every (hash, meta_id, company_id) against
what was written, and prints the import rate and the audit of --audit of the collection's
own top-10 searches against exact Hamming.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402
from _common import drop_database, scratch_database  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from ahashdb.milvus import import_collection  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--metric", default="HAMMING", help="HAMMING or JACCARD (BIN_FLAT)")
    ap.add_argument("--audit", type=int, default=200)
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    args = ap.parse_args()
    from pymilvus import DataType, MilvusClient

    companies, hashes = datagen.clustered(args.rows, 10)
    meta = np.arange(1, args.rows + 1)
    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "seed.db")
        client = MilvusClient(uri)
        schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("meta_id", DataType.INT64)
        schema.add_field("company_id", DataType.INT64)
        schema.add_field("image_vector", DataType.BINARY_VECTOR, dim=64)
        params = client.prepare_index_params()
        params.add_index(field_name="image_vector", index_type="BIN_FLAT",
                         metric_type=args.metric)
        client.create_collection("image_hashes", schema=schema, index_params=params)
        t0 = time.perf_counter()
        vectors = hashes.astype(">u8").view(np.uint8).reshape(-1, 8)  # msb-first, big-endian
        for start in range(0, args.rows, 10_000):
            client.insert("image_hashes", [
                {"meta_id": int(meta[i]), "company_id": int(companies[i]),
                 "image_vector": vectors[i].tobytes()}
                for i in range(start, min(start + 10_000, args.rows))])
        milvus_s = time.perf_counter() - t0
        client.close()
        print(f"Milvus Lite: {args.rows:,} rows written in {milvus_s:.1f} s"
              f" ({args.rows / milvus_s:,.0f} rows/s), BIN_FLAT {args.metric}")

        url = scratch_database(args.database_url, "ahashdb_milvus")
        try:
            with HashStore(url, auto_migrate=True) as store:
                t0 = time.perf_counter()
                result = import_collection(store, uri, "image_hashes", audit=args.audit)
                import_s = time.perf_counter() - t0
                got = np.array(store.connection.execute(
                    "SELECT company_id, meta_id, hash FROM image_hashes ORDER BY meta_id"
                ).fetchall(), dtype=np.int64)
            want_hash = hashes.view(np.int64)
            equal = (len(got) == args.rows and (got[:, 0] == companies).all()
                     and (got[:, 1] == meta).all() and (got[:, 2] == want_hash).all())
            print(f"ahashdb import: {result.seen:,} rows read, {result.added:,} added in"
                  f" {import_s:.1f} s including the audit; every hash, meta_id and company_id"
                  f" equal: {'yes' if equal else 'NO'}")
            if result.audit is not None:
                print(result.audit.line())
            return 0 if equal else 1
        finally:
            drop_database(url)


if __name__ == "__main__":
    raise SystemExit(main())
