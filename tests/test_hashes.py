"""The codec: bit-identical to imagehash, and every spelling round-trips."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ahashdb import hashes
from ahashdb.errors import ImageError, InvalidHash
from tests.imagegen import encode, mode_variants, photo

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)

# [bits (row-major 8×8), hex] pairs, imagehash's own spelling.
TABLE = [
    ([0] * 64, "0000000000000000"),
    ([1] * 64, "ffffffffffffffff"),
    ([1] + [0] * 63, "8000000000000000"),
    ([0] * 63 + [1], "0000000000000001"),
    ([1, 0] * 32, "aaaaaaaaaaaaaaaa"),
    ([1] * 8 + [0] * 56, "ff00000000000000"),
]


@pytest.mark.parametrize(("bits", "hex_"), TABLE)
def test_bits_and_hex_agree_with_imagehash(bits: list[int], hex_: str) -> None:
    ih = imagehash.ImageHash(np.array(bits, dtype=bool).reshape(8, 8))
    assert str(ih) == hex_
    assert hashes.to_hex(hashes.coerce_hash(ih)) == hex_
    assert str(hashes.to_imagehash(hashes.from_hex(hex_))) == hex_


def test_readme_pair_is_33_apart() -> None:
    a, b = "ffd7918181c9ffff", "9f172786e71f1e00"
    assert hashes.hamming(hashes.from_hex(a), hashes.from_hex(b)) == 33
    assert imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b) == 33


def test_signed_spelling_matches_postgres_hex_literal() -> None:
    # DESIGN.md: the same value as int.from_bytes(bytes.fromhex(h), "big", signed=True)
    h = "ffd7918181c9ffff"
    expected = int.from_bytes(bytes.fromhex(h), "big", signed=True)
    assert expected < 0
    assert hashes.to_signed(hashes.from_hex(h)) == expected
    assert hashes.to_signed(hashes.from_hex("7fffffffffffffff")) == (1 << 63) - 1
    assert hashes.to_signed(hashes.from_hex("8000000000000000")) == -(1 << 63)


@given(U64)
def test_spellings_round_trip(u: int) -> None:
    hex_ = hashes.to_hex(u)
    assert len(hex_) == 16 and hex_ == hex_.lower()
    assert hashes.from_hex(hex_) == u
    assert hashes.from_hex(hex_.upper()) == u
    s = hashes.to_signed(u)
    assert -(1 << 63) <= s < (1 << 63)
    assert hashes.to_unsigned(s) == u
    assert hashes.to_signed(s) == s
    assert hashes.from_bytes(hashes.to_bytes(u)) == u
    ih = hashes.to_imagehash(u)
    assert str(ih) == hex_
    assert hashes.coerce_hash(ih) == u
    assert hashes.to_bytes(u) == np.packbits(ih.hash.flatten()).tobytes()
    assert hashes.coerce_hash(hex_) == u
    assert hashes.coerce_hash(s) == u


@given(U64, U64)
def test_hamming_matches_imagehash(a: int, b: int) -> None:
    expected = hashes.to_imagehash(a) - hashes.to_imagehash(b)
    assert hashes.hamming(a, b) == expected
    assert hashes.hamming(hashes.to_signed(a), b) == expected


@pytest.mark.parametrize(
    "bad", ["", "abc", "ffd7918181c9fff", "ffd7918181c9ffff0", "ffd7918181c9fffg", "zz" * 8]
)
def test_bad_hex_names_the_value(bad: str) -> None:
    with pytest.raises(InvalidHash, match="16 hex digits") as info:
        hashes.from_hex(bad)
    assert repr(bad)[:20] in str(info.value)


@pytest.mark.parametrize("bad", [1 << 64, -(1 << 63) - 1, True, 1.5])
def test_out_of_range_ints_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidHash):
        hashes.coerce_hash(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [m for m in mode_variants(1) if m != "I;16"])
def test_every_mode_is_bit_identical_to_imagehash(mode: str) -> None:
    for seed in range(4):
        img = mode_variants(seed)[mode]
        assert img.mode == mode
        expected = str(imagehash.average_hash(img))
        assert hashes.to_hex(hashes.average_hash(img)) == expected


def test_16_bit_grayscale_is_scaled_to_8_bits_not_clipped() -> None:
    # The one documented difference from imagehash: it clips 16-bit values to white.
    for seed in range(4):
        img16 = mode_variants(seed)["I;16"]
        img8 = mode_variants(seed)["L"]  # img16 is img8 * 257
        ours = hashes.average_hash(img16)
        assert ours == hashes.average_hash(img8)
        assert hashes.to_hex(ours) == str(imagehash.average_hash(img8))
        assert str(imagehash.average_hash(img16)) == "0000000000000000"
        assert not hashes.is_low_information(ours)
        as_i = Image.fromarray(np.asarray(img16, dtype=np.int32))  # 16-bit data in mode I
        assert as_i.mode == "I" and hashes.average_hash(as_i) == ours
        dark = Image.fromarray(np.asarray(img8, dtype=np.uint16))  # 16-bit, values <= 255
        assert hashes.to_hex(hashes.average_hash(dark)) == str(imagehash.average_hash(dark))


def _imagehash_of(path: object) -> str:
    """imagehash's hash, except 16-bit grayscale files, which ahashdb scales to 8 bits."""
    with Image.open(path) as img:
        if img.mode.startswith("I") and np.asarray(img).max() > 255:
            img = Image.fromarray(np.rint(np.asarray(img) / 257).astype(np.uint8), "L")
        return str(imagehash.average_hash(img))


def test_files_of_every_format_hash_like_imagehash(images_dir) -> None:  # noqa: ANN001
    paths = sorted(images_dir.iterdir())
    assert len(paths) > 40
    for p in paths:
        expected = _imagehash_of(p)
        assert hashes.to_hex(hashes.average_hash(p)) == expected, p
        assert hashes.to_hex(hashes.average_hash(str(p))) == expected
        assert hashes.to_hex(hashes.average_hash(p.read_bytes())) == expected
        with open(p, "rb") as f:
            assert hashes.to_hex(hashes.average_hash(f)) == expected


def test_resized_and_recompressed_copies_stay_close() -> None:
    img = photo(5, size=(800, 600))
    original = hashes.average_hash(encode(img, "PNG"))
    copy = hashes.average_hash(encode(img.resize((400, 300)), "JPEG", quality=60))
    assert hashes.hamming(original, copy) <= 4


def test_hash_of_reads_hex_as_hash_and_paths_as_images(tmp_path) -> None:  # noqa: ANN001
    assert hashes.hash_of("ffd7918181c9ffff") == 0xFFD7918181C9FFFF
    p = tmp_path / "x.png"
    photo(3).save(p)
    assert hashes.hash_of(str(p)) == hashes.average_hash(p)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"<html>not an image</html>", "not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
    ],
)
def test_bad_image_bytes_raise_image_error(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        hashes.average_hash(data)


def test_truncated_images_raise_image_error(tmp_path) -> None:  # noqa: ANN001
    for fmt in ("JPEG", "PNG"):
        data = encode(photo(2), fmt)
        p = tmp_path / f"cut.{fmt.lower()}"
        p.write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageError, match=str(p)):
            hashes.average_hash(p)


def test_decompression_bomb_is_refused_before_decoding(tmp_path) -> None:  # noqa: ANN001
    # A tiny PNG whose header declares a canvas far beyond MAX_IMAGE_PIXELS.
    img = Image.new("L", (1, 1))
    data = bytearray(encode(img, "PNG"))
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data[8:33] = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    p = tmp_path / "bomb.png"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="decompression bomb"):
        hashes.average_hash(p)


def test_missing_file_and_directory(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ImageError, match="no such file"):
        hashes.average_hash(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        hashes.average_hash(tmp_path)


def test_file_object_is_accepted() -> None:
    data = encode(photo(4), "PNG")
    assert hashes.average_hash(io.BytesIO(data)) == hashes.average_hash(data)
