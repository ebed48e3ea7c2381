"""The eight orientations of the hash grid, and queries that find flipped/rotated copies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ahashdb import HashStore, average_hash, hamming
from ahashdb.orient import ORIENTATIONS, orientations, transform
from tests.imagegen import photo

ROOT = Path(__file__).resolve().parent.parent
U64 = st.integers(0, (1 << 64) - 1)
PIL_OPS = {
    "rotate90": Image.Transpose.ROTATE_90, "rotate180": Image.Transpose.ROTATE_180,
    "rotate270": Image.Transpose.ROTATE_270,
    "flip_horizontal": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip_vertical": Image.Transpose.FLIP_TOP_BOTTOM,
    "transpose": Image.Transpose.TRANSPOSE, "transverse": Image.Transpose.TRANSVERSE,
}


@given(U64)
def test_the_eight_orientations_form_the_dihedral_group(h: int) -> None:
    assert transform(h, "identity") == h
    r = h
    for _ in range(4):
        r = transform(r, "rotate90")
    assert r == h
    for flip in ("flip_horizontal", "flip_vertical", "transpose", "transverse", "rotate180"):
        assert transform(transform(h, flip), flip) == h
    assert transform(transform(h, "rotate90"), "rotate270") == h
    assert transform(h, "rotate180") == transform(transform(h, "flip_horizontal"),
                                                  "flip_vertical")
    assert list(orientations(h)) == list(ORIENTATIONS)
    assert all(v.bit_count() == h.bit_count() for v in orientations(h).values())


def test_grid_transforms_match_the_hash_of_the_transformed_image() -> None:
    for seed in range(6):
        img = photo(seed, (480, 480))
        h = average_hash(img)
        for name, op in PIL_OPS.items():
            assert hamming(transform(h, name), average_hash(img.transpose(op))) <= 2, name


def test_search_with_orientations_finds_flipped_and_rotated_copies(store: HashStore) -> None:
    img = photo(3, (400, 300))
    store.insert(img, company_id=1, meta_id=1)
    store.insert(photo(4, (400, 300)), company_id=1, meta_id=2)
    for name, op in PIL_OPS.items():
        q = average_hash(img.transpose(op))
        found = store.search(q, company_id=1, max_distance=4, orientations=True)
        assert [m.meta_id for m in found][:1] == [1], name
        assert found[0].distance <= 2
        # The orientation reported is the one that gives the distance reported.
        assert hamming(transform(q, found[0].orientation), average_hash(img)) \
            == found[0].distance
        assert len({m.id for m in found}) == len(found)  # each row once
        top = store.nearest(q, company_id=1, k=1, orientations=True)
        assert [m.meta_id for m in top] == [1] and top[0].distance == found[0].distance
    assert [m.orientation for m in store.search(average_hash(img), company_id=1,
                                                max_distance=0, orientations=True)] \
        == ["identity"]


def test_real_photos_recall_with_and_without_orientations(database_url: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "orientations.py"), "--database-url",
         database_url], capture_output=True, text=True, timeout=600, check=True).stdout
    rates = dict(re.findall(r"recall (with|without) orientations: \d+/\d+ = ([\d.]+)%", out))
    assert float(rates["with"]) >= 95.0, out
    assert float(rates["without"]) <= 20.0, out
