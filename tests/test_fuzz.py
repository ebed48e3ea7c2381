"""Fuzzing with hypothesis: whatever bytes or text arrive, only ahashdb's own errors escape
the codec, the manifest and hashes-file readers, and the image-hashing path."""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import imagehash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ahashdb.errors import AhashdbError
from ahashdb.hashes import average_hash, coerce_hash, from_hex, hash_of, to_hex
from ahashdb.ingest import items_from_manifest, read_hash_rows
from tests.imagegen import encode, photo

#: Examples per fuzz test; raise it for a long campaign (AHASHDB_FUZZ_EXAMPLES=20000).
EXAMPLES = int(os.environ.get("AHASHDB_FUZZ_EXAMPLES", "300"))

SEEDS = {
    "jpeg": encode(photo(1, (96, 64)), "JPEG", quality=80),
    "progressive": encode(photo(2, (96, 64)), "JPEG", quality=80, progressive=True),
    "png": encode(photo(3, (96, 64)), "PNG"),
    "gif": encode(photo(4, (96, 64)).convert("P"), "GIF"),
    "webp": encode(photo(5, (96, 64)), "WEBP"),
    "tiff": encode(photo(6, (96, 64)), "TIFF"),
    "bmp": encode(photo(7, (96, 64)), "BMP"),
}


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(sorted(SEEDS.items())))[1])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, len(data) - 1)) if data else 0
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
    return bytes(data)


@given(mutated_images())
@settings(max_examples=EXAMPLES)
def test_mutated_images_hash_or_raise_ahashdb_errors(data: bytes) -> None:
    # ahashdb refuses exactly what Pillow cannot decode, naming the input, and hashes the
    # rest exactly as imagehash does.
    try:
        h = average_hash(data)
    except AhashdbError as exc:
        assert str(exc).startswith(f"<{len(data)} bytes>: ")
        # any decoder error will do
        with pytest.raises(Exception), warnings.catch_warnings():  # noqa: B017
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.open(io.BytesIO(data)).load()
        return
    img = Image.open(io.BytesIO(data))
    if img.mode.startswith("I"):
        return  # 16/32-bit grayscale: ahashdb scales it to 8 bits first (documented)
    assert h == int(str(imagehash.average_hash(img)), 16)


@given(st.one_of(st.text(max_size=40), st.binary(max_size=12), st.integers(),
                 st.floats(allow_nan=True), st.none(), st.lists(st.integers(), max_size=3)))
@settings(max_examples=EXAMPLES)
def test_hash_spellings_parse_or_raise_ahashdb_errors(value: object) -> None:
    try:
        h = coerce_hash(value)  # type: ignore[arg-type]
    except AhashdbError:
        return
    assert from_hex(to_hex(h)) == h


@given(st.text(max_size=64))
@settings(max_examples=EXAMPLES)
def test_hash_of_any_text_is_a_hash_or_an_ahashdb_error(text: str) -> None:
    try:
        h = hash_of(text)
    except AhashdbError:
        return
    assert h == from_hex(text)  # no such file exists, so only a hex spelling gets here


def _manifest_bytes() -> st.SearchStrategy[bytes]:
    header = st.sampled_from([b"path,meta_id,company_id,source\n", b"path,meta_id\n", b"",
                              b"meta_id\n", b"\xef\xbb\xbfpath,meta_id\n"])
    csv_line = st.lists(
        st.one_of(st.text(max_size=12).map(lambda t: t.encode("utf-8", "replace")),
                  st.binary(max_size=12), st.sampled_from([b"1", b"-5", b"\"", b",,", b"\x00"])),
        max_size=5).map(lambda parts: b",".join(parts) + b"\n")
    json_line = st.one_of(
        st.sampled_from([b'{"path": "a.jpg", "meta_id": 1}', b'{"path": 5, "meta_id": [1]}',
                         b'{"path": "a.jpg", "meta_id": "x", "company_id": {}}', b"[1, 2]",
                         b'{"path": null}', b"{", b'"s"', b'{"path": "\\u0000"}']),
        st.binary(max_size=40)).map(lambda b: b + b"\n")
    return st.tuples(header, st.lists(st.one_of(csv_line, json_line), max_size=6)).map(
        lambda t: t[0] + b"".join(t[1]))


@given(_manifest_bytes(), st.sampled_from([".csv", ".jsonl", ".txt"]))
@settings(max_examples=EXAMPLES)
def test_any_manifest_yields_items_or_raises_ahashdb_errors(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"manifest{suffix}"
        path.write_bytes(data)
        try:
            for item in items_from_manifest(path):
                assert item.error is not None or (item.meta_id is not None and item.source)
        except AhashdbError:
            pass
        try:
            for row in read_hash_rows(path, company_id=1):
                # --company-id 1 holds: no row's own company_id column moved it elsewhere
                assert row["company_id"] == 1
                assert from_hex(to_hex(row["hash"])) == row["hash"]
                assert -(1 << 63) <= row["meta_id"] < 1 << 63
        except AhashdbError:
            pass
