"""Files that real folders hold besides clean photos: each either hashes exactly as imagehash
does or must be skipped with a reason. Made on the spot, no downloads."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, features

from tests.imagegen import encode, photo

__all__ = ["BAD", "GOOD", "png_with_header", "write_zoo"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` × ``height`` 8-bit gray pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def _animated_gif() -> bytes:
    import io

    frames = [photo(s, (120, 90)).convert("P") for s in (1, 2, 3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _bad() -> dict[str, bytes]:
    jpeg = encode(photo(5), "JPEG", quality=90)
    progressive = encode(photo(6), "JPEG", quality=90, progressive=True)
    png = encode(photo(7), "PNG")
    return {
        "1.jpg": b"",
        "2.jpg": b"just some text, not a JPEG\n",
        "3.jpg": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        "4.svg": b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
        # HEIF/AVIF boxes with nothing a decoder could use.
        "5.heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200,
        "6.avif": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x01" * 200,
        "7.jpg": jpeg[: len(jpeg) // 3],
        "8.jpg": progressive[: len(progressive) // 3],
        "9.png": png[: len(png) // 2],
        "10.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,
        "11.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        "12.png": png_with_header(0, 10),
        "13.png": png_with_header(100_000, 100_000),  # a decompression bomb, 100 bytes
    }


def _good() -> dict[str, bytes]:
    base = photo(11, (300, 200))
    gray16 = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.info["transparency"] = 3
    clear = base.convert("RGBA")
    clear.putalpha(0)
    good = {
        "20.png": encode(gray16, "PNG"),
        "21.tiff": encode(base.convert("CMYK"), "TIFF"),
        "22.jpg": encode(base.convert("CMYK"), "JPEG"),
        "23.png": encode(pal, "PNG", transparency=3),
        "24.png": encode(clear, "PNG"),
        "25.gif": _animated_gif(),
        "26.png": encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
        "27.png": encode(photo(12, (10_000, 1)), "PNG"),
        "28.png": encode(photo(13, (300, 200)), "JPEG"),  # a JPEG named .png
        "29.heic": encode(photo(14, (300, 200)), "PNG"),  # a PNG named .heic
        "30.jpg": encode(photo(15, (300, 200)), "JPEG") + b"trailing garbage" * 50,
    }
    if features.check("avif"):
        good["31.avif"] = encode(photo(16, (300, 200)), "AVIF")
    return good


BAD: dict[str, bytes] = _bad()
GOOD: dict[str, bytes] = _good()


def write_zoo(folder: Path) -> None:
    """Write every BAD and GOOD file into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in {**BAD, **GOOD}.items():
        (folder / name).write_bytes(data)
