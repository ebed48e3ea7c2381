"""--fast: JPEGs decoded at reduced scale hash within 2 bits of imagehash on real photos,
other formats exactly; rows hashed so are marked, and stats shows the mix; the default
stays bit-identical."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ahashdb import HashStore, hash_image
from tests.test_cli import run as cli
from tests.test_real_photos import READABLE

# Real photos enlarged to camera-like size, so that the decoder really reduces them.
SAMPLE = [p for p in READABLE if p.suffix in (".png", ".jpg")][:12]


def _camera_jpeg(path: Path) -> bytes:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    big = rgb.resize((rgb.width * 4, rgb.height * 4), Image.BILINEAR)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize("path", SAMPLE, ids=lambda p: p.name)
def test_fast_is_within_two_bits_of_imagehash_on_real_photos(path: Path) -> None:
    data = _camera_jpeg(path)
    exact = hash_image(data)
    assert f"{exact:016x}" == str(imagehash.average_hash(Image.open(io.BytesIO(data))))
    assert (hash_image(data, fast=True) ^ exact).bit_count() <= 2


def test_fast_decodes_less_of_a_jpeg_and_all_of_other_formats() -> None:
    from ahashdb.hashes import open_image

    data = _camera_jpeg(SAMPLE[0])
    full, reduced = open_image(data), open_image(data, fast=True)
    assert reduced.width * 4 <= full.width + 3 and reduced.mode == "L"
    png = io.BytesIO()
    Image.open(io.BytesIO(data)).save(png, "PNG")
    assert hash_image(png.getvalue(), fast=True) == hash_image(png.getvalue())


def test_rows_hashed_fast_are_marked_and_counted(store: HashStore, tmp_path: Path) -> None:
    folder = tmp_path / "cam"
    folder.mkdir()
    for i, path in enumerate(SAMPLE[:4], 1):
        (folder / f"{i}.jpg").write_bytes(_camera_jpeg(path))
    assert cli(store.url, "ingest", str(folder), "--company-id", "1").exit_code == 0
    assert cli(store.url, "ingest", str(folder), "--company-id", "2", "--fast").exit_code == 0
    decode = dict(store.connection.execute(
        "SELECT h.company_id, k.decode FROM image_hashes h JOIN ahash_hashers k"
        " ON k.id = h.hasher GROUP BY 1, 2").fetchall())
    assert decode == {1: "full", 2: "reduced"}
    stats = store.stats()
    assert {(h["decode"], h["rows"]) for h in stats["hashed_by"]} == {("full", 4),
                                                                     ("reduced", 4)}
    table = cli(store.url, "stats").stdout
    assert "JPEGs decoded at reduced scale (--fast)" in table
    hashed = cli(store.url, "hash", str(folder / "1.jpg"), "--fast").stdout.split()[0]
    assert int(hashed, 16) == hash_image(folder / "1.jpg", fast=True)


@settings(max_examples=150, deadline=None)
@given(width=st.integers(1, 300), height=st.integers(1, 300),
       size=st.sampled_from([(8, 8), (9, 8), (32, 32)]), seed=st.integers(0, 2**32 - 1),
       smooth=st.booleans())
def test_the_fast_resize_of_an_unreduced_image_is_pillows_lanczos(
        width: int, height: int, size: tuple[int, int], seed: int, smooth: bool) -> None:
    # --fast resizes a reduced decode with weights for the full-size picture; given the
    # full-size picture itself it must be Pillow's own resize (pass order and rounding
    # included), but for float-against-fixed-point ties.
    from ahashdb.hashes import _resize_as_full

    rng = np.random.default_rng(seed)
    if smooth:
        walk = np.cumsum(rng.normal(0, 6, (height, width)), axis=1) + 128
        pixels = np.clip(walk, 0, 255).astype(np.uint8)
    else:
        pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    img = Image.fromarray(pixels)
    ours = np.asarray(_resize_as_full(img, img.size, size), dtype=int)
    pillow = np.asarray(img.resize(size, Image.LANCZOS), dtype=int)
    assert ours.shape == pillow.shape
    assert np.abs(ours - pillow).max() <= 1
