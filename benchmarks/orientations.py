"""Recall of flipped and rotated copies of real photos, with and without --orientations.

    python benchmarks/orientations.py
    python benchmarks/orientations.py --database-url postgresql://... --max-distance 8

Stores the real photographs scikit-image ships (the dev extra installs it) in a scratch
company, then queries a JPEG copy of each under each of the seven flips/rotations (PIL's
Image.transpose: mirror left-right and top-bottom, rotate 90/180/270, transpose,
transverse) and one EXIF-rotated copy (pixels rotated, as cameras' "rotate on export"
does). A copy is recalled when its own original comes back within --max-distance. Prints
recall without and with orientations, the distance at which each was found, and how many
other photos came back (false matches). Uses the test or scratch database it is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import sys
from pathlib import Path

from PIL import Image, ImageOps

from ahashdb import HashStore, average_hash

TRANSPOSES = {
    "flip_left_right": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip_top_bottom": Image.Transpose.FLIP_TOP_BOTTOM,
    "rotate_90": Image.Transpose.ROTATE_90,
    "rotate_180": Image.Transpose.ROTATE_180,
    "rotate_270": Image.Transpose.ROTATE_270,
    "transpose": Image.Transpose.TRANSPOSE,
    "transverse": Image.Transpose.TRANSVERSE,
}
COMPANY = 2**62 + 17  # a company id no real data uses


def photos() -> list[Path]:
    """scikit-image's bundled photographs that Pillow can read."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image is not installed: pip install '.[dev]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".png", ".jpg", ".gif", ".tif"):
            try:
                with Image.open(p) as img:
                    img.load()
                out.append(p)
            except Exception:  # noqa: BLE001, S112 - the wheel's multipage TIFF: not a photo
                continue
    return out


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def exif_rotated(img: Image.Image) -> bytes:
    """A copy whose pixels were rotated by honouring an EXIF orientation of 6 (90° CW)."""
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    img.convert("RGB").save(buf, "JPEG", quality=90, exif=exif.tobytes())
    with Image.open(io.BytesIO(buf.getvalue())) as tagged:
        return jpeg(ImageOps.exif_transpose(tagged))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None, help="server to use (default: embedded)")
    ap.add_argument("--max-distance", type=int, default=10)
    args = ap.parse_args(argv)
    paths = photos()
    with HashStore(args.database_url) as store:
        store.connection.execute("DELETE FROM image_hashes WHERE company_id = %s", (COMPANY,))
        for i, p in enumerate(paths):
            store.insert(p, company_id=COMPANY, meta_id=i, source=p.name)
        found = {False: [], True: []}
        others = {False: 0, True: 0}
        for i, p in enumerate(paths):
            with Image.open(p) as img:
                img.load()
                copies = {name: jpeg(img.transpose(t)) for name, t in TRANSPOSES.items()}
                copies["exif_rotate"] = exif_rotated(img)
            for data in copies.values():
                h = average_hash(data)
                for oriented in (False, True):
                    matches = store.search(h, company_id=COMPANY,
                                           max_distance=args.max_distance,
                                           orientations=oriented)
                    own = [m.distance for m in matches if m.meta_id == i]
                    found[oriented].append(own[0] if own else None)
                    others[oriented] += sum(m.meta_id != i for m in matches)
        store.connection.execute("DELETE FROM image_hashes WHERE company_id = %s", (COMPANY,))
    n = len(found[False])
    print(f"{len(paths)} real photos, {n} flipped/rotated JPEG copies, T={args.max_distance}")
    for oriented in (False, True):
        hits = [d for d in found[oriented] if d is not None]
        label = "with orientations" if oriented else "without orientations"
        median = statistics.median(hits) if hits else float("nan")
        print(f"recall {label}: {len(hits)}/{n} = {100 * len(hits) / n:.1f}%"
              f" (median distance {median:g}); other photos returned: {others[oriented]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
