"""Synthetic photo-like images, and edited copies of them, for demos, tests and benchmarks.

    python -m ahashdb.samples DIR [--count N] [--size WxH]

writes ``DIR/originals/<meta_id>.jpg`` and, for a few of them, edited copies in
``DIR/copies/`` (resized, recompressed, brightened, lightly cropped) that ahashdb should
find again: the README's first command uses it. No downloads; same seed, same images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """An RGB image with large smooth shapes, gradients and fine noise, like a photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for _ in range(3):
        f = rng.normal() * x / w + rng.normal() * y / h
        for _ in range(4):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.06, 0.4) * w
            f += rng.normal() * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        f += 0.05 * rng.standard_normal(f.shape, dtype=np.float32)
        f = (f - f.min()) / (float(np.ptp(f)) or 1.0)
        channels.append(f)
    arr = (np.stack(channels, axis=-1) * 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def edits(img: Image.Image) -> dict[str, Image.Image]:
    """Edited copies a user would call 'the same picture'."""
    w, h = img.size
    return {
        "resized": img.resize((w // 2, h // 2)),
        "brighter": ImageEnhance.Brightness(img).enhance(1.15),
        "cropped": img.crop((w // 40, h // 40, w - w // 40, h - h // 40)),
    }


def write_demo(folder: Path, count: int = 24, size: tuple[int, int] = (640, 480)) -> None:
    """Write originals (named by meta_id) and edited copies of every sixth one."""
    originals, copies = folder / "originals", folder / "copies"
    originals.mkdir(parents=True, exist_ok=True)
    copies.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        meta_id = 1000 + i
        img = photo(i, size)
        img.save(originals / f"{meta_id}.jpg", quality=90)
        if i % 6 == 0:
            for name, edited in edits(img).items():
                edited.save(copies / f"{meta_id}-{name}.jpg", quality=60)


def main() -> None:
    """Command-line entry: write the demo images."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    write_demo(args.folder, args.count, (w, h))
    print(f"wrote {args.count} originals to {args.folder / 'originals'}"
          f" and edited copies to {args.folder / 'copies'}")


if __name__ == "__main__":
    main()
