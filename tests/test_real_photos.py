"""Real photographs (the ones scikit-image ships in its wheel): ahashdb's hashes equal
imagehash's, as files and after the edits users make, and they are found again."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import imagehash
import pytest
from PIL import Image, UnidentifiedImageError

from ahashdb import HashStore, hashes
from ahashdb.errors import ImageError


def _photo_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "pip install '.[dev]'"
    return Path(next(iter(spec.submodule_search_locations))) / "data"


PHOTOS = sorted(
    p for p in _photo_dir().iterdir() if p.suffix.lower() in (".png", ".jpg", ".gif", ".tif")
)
READABLE = [p for p in PHOTOS if p.name != "multipage_rgb.tif"]


def test_there_are_real_photos() -> None:
    names = {p.name for p in PHOTOS}
    assert {"astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "retina.jpg"} <= names
    assert len(PHOTOS) >= 25


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_real_photo_hash_is_bit_identical_to_imagehash(path: Path) -> None:
    try:
        with Image.open(path) as img:
            expected = str(imagehash.average_hash(img))
    except UnidentifiedImageError:  # Pillow cannot read it: ahashdb says so, naming it
        with pytest.raises(ImageError, match=f"{path}: not an image Pillow can read"):
            hashes.average_hash(path)
        return
    assert hashes.to_hex(hashes.average_hash(path)) == expected
    assert hashes.to_hex(hashes.average_hash(path.read_bytes())) == expected


@pytest.mark.parametrize("path", READABLE[::3], ids=lambda p: p.name)
def test_edited_copies_are_bit_identical_too(path: Path) -> None:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    for edit in (rgb.resize((max(1, rgb.width // 2), max(1, rgb.height // 2))), rgb.rotate(3)):
        buf = io.BytesIO()
        edit.save(buf, "JPEG", quality=70)
        data = buf.getvalue()
        expected = str(imagehash.average_hash(Image.open(io.BytesIO(data))))
        assert hashes.to_hex(hashes.average_hash(data)) == expected


def test_resized_recompressed_photos_are_found_at_imagehash_distance(
    store: HashStore, tmp_path: Path
) -> None:
    photos = [p for p in READABLE if p.stat().st_size > 40_000]
    for meta, p in enumerate(photos):
        store.insert(p, company_id=1, meta_id=meta, source=p.name)
    for meta, p in enumerate(photos):
        copy = tmp_path / f"{meta}.jpg"
        with Image.open(p) as img:
            img.convert("RGB").resize((img.width * 2 // 3, img.height * 2 // 3)).save(
                copy, quality=60)
        expected = imagehash.average_hash(Image.open(p)) - imagehash.average_hash(
            Image.open(copy))
        found = {m.meta_id: m.distance for m in store.search(copy, company_id=1)}
        assert found.get(meta) == expected, p.name
