"""Photo-like test images made on the spot (no downloads): smooth fields plus texture."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """An RGB image with large smooth shapes, gradients and noise, like a small photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = []
    for _ in range(3):
        f = rng.normal() * x / w + rng.normal() * y / h
        for _ in range(4):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, 120)
            f += rng.normal() * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        f += 0.05 * rng.normal(size=f.shape)
        f = (f - f.min()) / (np.ptp(f) or 1.0)
        channels.append(f)
    arr = (np.stack(channels, axis=-1) * 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    """The image encoded as bytes in ``fmt``."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def mode_variants(seed: int) -> dict[str, Image.Image]:
    """The same picture in every mode ahashdb must hash like imagehash."""
    base = photo(seed)
    gray = base.convert("L")
    rgba = base.convert("RGBA")
    rgba.putalpha(gray.point(lambda v: 255 - v))
    p_trans = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    p_trans.info["transparency"] = 0
    i16 = Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257)
    return {
        "L": gray,
        "RGB": base,
        "RGBA": rgba,
        "P": p_trans,
        "CMYK": base.convert("CMYK"),
        "1": gray.convert("1"),
        "LA": base.convert("LA"),
        "I": gray.convert("I"),
        "I;16": i16,
        "F": gray.convert("F"),
        "YCbCr": base.convert("YCbCr"),
        "HSV": base.convert("HSV"),
    }


def write_image_set(folder: Path) -> list[Path]:
    """Write a varied set of images; returns their paths."""
    paths = []
    for seed in range(6):
        img = photo(seed, size=(320 + 40 * seed, 240 + 10 * seed))
        for fmt, ext, kw in (
            ("JPEG", "jpg", {"quality": 85}),
            ("PNG", "png", {}),
            ("WEBP", "webp", {"quality": 80}),
            ("BMP", "bmp", {}),
            ("GIF", "gif", {}),
            ("TIFF", "tiff", {}),
        ):
            p = folder / f"{1000 + seed}_{ext}.{ext}"
            p.write_bytes(encode(img, fmt, **kw))
            paths.append(p)
    for name, img in mode_variants(99).items():
        fmt = "TIFF" if name in ("CMYK", "F", "I", "YCbCr", "HSV", "LA") else "PNG"
        if name == "YCbCr":
            fmt = "JPEG"
        if name == "HSV":
            continue  # no common format stores HSV; it is tested in memory
        p = folder / f"mode_{name.replace(';', '_')}.{fmt.lower()}"
        img.save(p, fmt)
        paths.append(p)
    return paths
