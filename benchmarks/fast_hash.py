"""Hashing camera-size JPEGs: imagehash's full decode against --fast (reduced-scale decode).

    python benchmarks/fast_hash.py                 # 12 MP copies of the real photos
    python benchmarks/fast_hash.py --megapixels 16

Takes the photographs scikit-image ships, enlarges each to the given size (as a camera's
JPEG, quality 90, with a little sensor noise) in a temporary folder, and in one process,
one image at a time (each file read from the page cache): images/s of ahashdb's exact
aHash (== imagehash.average_hash) and of ``fast=True``, interleaved over --rounds rounds
(median), and the bits by which each fast hash differs from the exact one. Then the recall
effect: edited copies (half size, JPEG quality 60, 10% brighter) hashed exactly, searched
at T = 10 against the originals hashed exactly and hashed fast; and how far --fast moves
the other algorithms' hashes. No database.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orientations import photos  # noqa: E402

from ahashdb.hashes import hash_image  # noqa: E402


def camera_jpeg(path: Path, pixels: int, rng: np.random.Generator) -> bytes:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    scale = (pixels / (rgb.width * rgb.height)) ** 0.5
    big = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.LANCZOS)
    noisy = np.asarray(big, dtype=np.int16) + rng.normal(0, 3, (big.height, big.width, 1))
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, path in enumerate(photos()):
            f = Path(tmp) / f"{i}.jpg"
            f.write_bytes(camera_jpeg(path, int(args.megapixels * 1e6), rng))
            files.append(f)
        for f in files:
            f.read_bytes()  # into the page cache
        sizes = [Image.open(f).size for f in files]
        print(f"{len(files)} photos enlarged to {args.megapixels:g} MP JPEGs"
              f" ({sizes[0][0]}x{sizes[0][1]} the first), {args.rounds} interleaved rounds")
        rates: dict[bool, list[float]] = {False: [], True: []}
        hashes: dict[bool, list[int]] = {}
        for _ in range(args.rounds):
            for fast in (False, True):
                t0 = time.perf_counter()
                hashes[fast] = [hash_image(f, "ahash", fast=fast) for f in files]
                rates[fast].append(len(files) / (time.perf_counter() - t0))
        exact, quick = statistics.median(rates[False]), statistics.median(rates[True])
        print(f"exact (imagehash): {exact:6.2f} images/s   fast: {quick:6.2f} images/s"
              f"   ({quick / exact:.1f}x)")
        diffs = sorted((a ^ b).bit_count() for a, b in zip(hashes[False], hashes[True],
                                                           strict=True))
        p99 = diffs[min(len(diffs) - 1, round(0.99 * (len(diffs) - 1)))]
        print(f"bits fast differs from exact: max {diffs[-1]}, p99 {p99},"
              f" {sum(d > 0 for d in diffs)} of {len(diffs)} differ at all,"
              f" histogram {dict(sorted((d, diffs.count(d)) for d in set(diffs)))}")

        edits = {
            "half size": lambda im: im.resize((im.width // 2, im.height // 2)),
            "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
            "quality 60": lambda im: im,
        }
        found = {False: 0, True: 0}
        total = 0
        for f, h_exact, h_fast in zip(files, hashes[False], hashes[True], strict=True):
            with Image.open(f) as img:
                rgb = img.convert("RGB")
            for edit in edits.values():
                out = io.BytesIO()
                edit(rgb).save(out, "JPEG", quality=60)
                q = hash_image(out.getvalue())
                total += 1
                found[False] += (q ^ h_exact).bit_count() <= 10
                found[True] += (q ^ h_fast).bit_count() <= 10
        print(f"recall at T=10 of {total} edited copies (exact hashes) against originals hashed"
              f" exactly: {found[False] / total:.1%}, hashed fast: {found[True] / total:.1%}")
        for algorithm in ("dhash", "phash", "whash"):
            moved = sorted((hash_image(f, algorithm) ^ hash_image(f, algorithm, fast=True))
                           .bit_count() for f in files)
            print(f"{algorithm}: bits fast differs from exact: max {moved[-1]},"
                  f" {sum(d > 0 for d in moved)} of {len(moved)} differ at all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
