"""Photo-like test images made on the spot (no downloads): smooth fields plus texture."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ahashdb.samples import photo

__all__ = ["encode", "mode_variants", "photo", "write_image_set"]


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
