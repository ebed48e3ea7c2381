"""import-milvus end to end against Milvus Lite (a real Milvus engine from a wheel) and the
real database: every hash, meta_id and company_id equal, both bit orders, the audit."""

from __future__ import annotations

import re
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image
from pymilvus import DataType, MilvusClient
from typer.testing import CliRunner

from ahashdb import HashStore
from ahashdb.errors import InvalidInput
from ahashdb.hashes import to_signed
from ahashdb.milvus import detect_bit_order, vector_to_hash
from tests.imagegen import photo
from tests.test_cli import run as cli

runner = CliRunner()
N = 3_000


def _hashes(n: int, photos: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(company, meta, bits[n, 64]): clustered aHash-like rows, the first from real images."""
    rng = np.random.default_rng(3)
    centres = rng.integers(0, 2, size=(n // 6 + 1, 64), dtype=np.uint8)
    bits = centres[rng.integers(0, len(centres), n)]
    flips = rng.random((n, 64)) < 0.05
    bits = bits ^ flips.astype(np.uint8)
    for i, p in enumerate(photos):
        with Image.open(p) as img:
            bits[i] = imagehash.average_hash(img).hash.flatten().astype(np.uint8)
    meta = np.arange(1, n + 1, dtype=np.int64)
    company = (meta % 3 + 1).astype(np.int64)
    return company, meta, bits


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder = tmp_path_factory.mktemp("milvus")
    photos = []
    for i in range(12):
        p = folder / f"{i + 1}.jpg"
        photo(40 + i, (240, 180)).save(p, quality=90)
        photos.append(p)
    company, meta, bits = _hashes(N, photos)
    uri = str(folder / "lite.db")
    client = MilvusClient(uri)

    def make(name: str, vectors: list, vtype: DataType, index: str, metric: str) -> None:
        schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("meta_id", DataType.INT64)
        schema.add_field("company_id", DataType.INT64)
        schema.add_field("image_vector", vtype, dim=64)
        params = client.prepare_index_params()
        params.add_index(field_name="image_vector", index_type=index, metric_type=metric)
        client.create_collection(name, schema=schema, index_params=params)
        rows = [{"meta_id": int(m), "company_id": int(c), "image_vector": v}
                for m, c, v in zip(meta, company, vectors, strict=True)]
        client.insert(name, rows)

    msb = [np.packbits(b).tobytes() for b in bits]  # the seed scripts' spelling
    lsb = [np.packbits(b, bitorder="little").tobytes() for b in bits]  # Milvus docs' spelling
    make("msb_hamming", msb, DataType.BINARY_VECTOR, "BIN_FLAT", "HAMMING")
    make("lsb_hamming", lsb, DataType.BINARY_VECTOR, "BIN_FLAT", "HAMMING")
    make("msb_jaccard", msb, DataType.BINARY_VECTOR, "BIN_FLAT", "JACCARD")
    make("float_l2", [b.astype(np.float32).tolist() for b in bits], DataType.FLOAT_VECTOR,
         "FLAT", "L2")
    client.close()
    expected = {(int(c), int(m), to_signed(int.from_bytes(np.packbits(b).tobytes(), "big")))
                for c, m, b in zip(company, meta, bits, strict=True)}
    return uri, expected, photos


def stored(store: HashStore) -> set[tuple[int, int, int]]:
    return set(store.connection.execute(
        "SELECT company_id, meta_id, hash FROM image_hashes").fetchall())


def test_vector_spellings() -> None:
    bits = np.array([1, 0, 0, 0, 0, 0, 0, 0] + [0] * 55 + [1], dtype=np.uint8)
    assert vector_to_hash(np.packbits(bits).tobytes(), "msb") == 0x8000000000000001
    assert vector_to_hash(np.packbits(bits, bitorder="little").tobytes(), "lsb") \
        == 0x8000000000000001
    assert vector_to_hash([np.packbits(bits).tobytes()]) == 0x8000000000000001
    assert vector_to_hash(bits.astype(float).tolist()) == 0x8000000000000001
    with pytest.raises(InvalidInput, match="expected 8"):
        vector_to_hash(b"\x00" * 7)
    with pytest.raises(InvalidInput, match="0 or 1"):
        vector_to_hash([0.5] * 64)
    v = np.packbits(bits, bitorder="little").tobytes()
    assert detect_bit_order([(v, 0x8000000000000001)]) == "lsb"
    with pytest.raises(InvalidInput, match="neither bit order"):
        detect_bit_order([(v, 0x1234)])


@pytest.mark.parametrize("collection, order", [("msb_hamming", "msb"), ("lsb_hamming", "lsb"),
                                               ("float_l2", "msb")])
def test_import_is_exact_idempotent_and_the_exact_metrics_audit_clean(
    store: HashStore, milvus_db, collection: str, order: str  # noqa: ANN001
) -> None:
    uri, expected, photos = milvus_db
    r = cli(store.url, "import-milvus", "--uri", uri, "--collection", collection,
            "--bit-order", order, "--audit", "30", "--batch-size", "700")
    assert r.exit_code == 0, r.output
    assert f"{N} rows from {collection}: {N} added, 0 already present" in r.stderr
    assert stored(store) == expected
    for p in photos:  # real images: the stored hex is imagehash's own string
        with Image.open(p) as img:
            hexes = {h for (h,) in store.connection.execute(
                "SELECT ahash_to_hex(hash) FROM image_hashes WHERE meta_id = %s",
                (int(p.stem),))}
            assert hexes == {str(imagehash.average_hash(img))}
    audit = re.search(r"audit: 30 top-10 searches re-run; (\d+) returned a different", r.stdout)
    assert audit and int(audit[1]) == 0, r.stdout  # HAMMING / L2 on 0-1 vectors are exact
    again = cli(store.url, "import-milvus", "--uri", uri, "--collection", collection,
                "--bit-order", order)
    assert again.exit_code == 0 and f"0 added, {N} already present" in again.stderr
    assert len(stored(store)) == N


def test_bit_order_auto_from_samples_and_a_wrong_order_is_refused(
    store: HashStore, milvus_db  # noqa: ANN001
) -> None:
    uri, expected, photos = milvus_db
    samples = [arg for p in photos[:3] for arg in ("--sample", str(p))]
    r = cli(store.url, "import-milvus", "--uri", uri, "--collection", "lsb_hamming",
            "--bit-order", "auto", *samples)
    assert r.exit_code == 0, r.output
    assert "bit order lsb" in r.stderr and stored(store) == expected
    store.connection.execute("TRUNCATE image_hashes")
    r = cli(store.url, "import-milvus", "--uri", uri, "--collection", "lsb_hamming",
            "--bit-order", "msb", *samples)
    assert r.exit_code == 1 and r.stderr == "error: --bit-order msb: the samples say lsb\n"
    assert stored(store) == set()  # refused before anything was written


def test_audit_counts_what_a_jaccard_search_gets_wrong(
    store: HashStore, milvus_db  # noqa: ANN001
) -> None:
    uri, expected, _ = milvus_db
    r = cli(store.url, "import-milvus", "--uri", uri, "--collection", "msb_jaccard",
            "--audit", "40")
    assert r.exit_code == 0, r.output
    assert stored(store) == expected
    audit = re.search(r"(\d+) returned a different top-10 from exact Hamming \((\d+) results",
                      r.stdout)
    assert audit and int(audit[1]) > 0 and int(audit[2]) > 0, r.stdout
    assert "Milvus metric JACCARD" in r.stdout


def test_milvus_errors_are_one_line(store: HashStore, milvus_db) -> None:  # noqa: ANN001
    uri, _, _ = milvus_db
    r = cli(store.url, "import-milvus", "--uri", uri, "--collection", "nope")
    assert r.exit_code == 1 and r.stderr.startswith("error: collection 'nope'")
    assert r.stderr.count("\n") == 1
    r = cli(store.url, "import-milvus", "--uri", uri, "--collection", "msb_hamming",
            "--vector-field", "meta_id")
    assert r.exit_code == 1 and "expected a BINARY_VECTOR or FLOAT_VECTOR" in r.stderr
