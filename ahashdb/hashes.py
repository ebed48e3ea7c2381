"""The 64-bit aHash and its four spellings.

One hash, four spellings (see DESIGN.md §1):

* hex       -- 16 lowercase hex digits, identical to ``str(imagehash.average_hash(img))``
* bytes     -- 8 bytes, big-endian, identical to ``numpy.packbits(h.hash.flatten())``
* unsigned  -- ``int(hex, 16)``, 0 … 2**64-1
* signed    -- the unsigned value as two's complement int64: the PostgreSQL BIGINT

Images are hashed by :func:`imagehash.average_hash` itself, so results are bit-identical.
This module does no database I/O.
"""

from __future__ import annotations

import functools
import io
import os
import re
import stat
import string
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import imagehash
import numpy as np
import PIL
from PIL import Image, UnidentifiedImageError

from .errors import ImageError, InvalidHash, InvalidInput

__all__ = [
    "ALGORITHMS",
    "DEFAULT_MAX_DISTANCE",
    "HashLike",
    "ImageLike",
    "average_hash",
    "from_bytes",
    "from_hex",
    "hamming",
    "hash_image",
    "hasher_versions",
    "image_hash",
    "is_low_information",
    "open_image",
    "to_bytes",
    "to_hex",
    "to_imagehash",
    "to_signed",
    "to_unsigned",
    "coerce_hash",
]

ImageLike = str | os.PathLike | bytes | bytearray | BinaryIO | Image.Image
HashLike = str | int | bytes | bytearray | imagehash.ImageHash

MASK64 = (1 << 64) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
_HEXDIGITS = frozenset(string.hexdigits)


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- spellings ---------------------------------------------------------------------------


def _hex_digits(text: str) -> str:
    digits = text.strip()
    return digits[2:] if digits[:2].lower() == "0x" else digits


def from_hex(text: str) -> int:
    """Parse 16 hex digits (either case, optional ``0x``) into the unsigned value."""
    if not isinstance(text, str):
        raise InvalidHash(f"hash {_short(text)}: expected a string of 16 hex digits")
    digits = _hex_digits(text)
    if len(digits) != 16 or not _HEXDIGITS.issuperset(digits):
        raise InvalidHash(
            f"hash {_short(text)}: expected exactly 16 hex digits (0-9, a-f), got {len(digits)}"
            " characters" + ("" if _HEXDIGITS.issuperset(digits) else " with non-hex characters")
        )
    return int(digits, 16)


def to_hex(value: int) -> str:
    """Spell a hash (unsigned or signed int) as 16 lowercase hex digits."""
    return f"{to_unsigned(value):016x}"


def to_unsigned(value: int) -> int:
    """The unsigned value of a hash given as unsigned or as signed BIGINT."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidHash(f"hash {_short(value)}: expected an int")
    value = int(value)
    if not INT64_MIN <= value <= MASK64:
        raise InvalidHash(f"hash {value}: outside both 0…2^64-1 and the signed 64-bit range")
    return value & MASK64


def to_signed(value: int) -> int:
    """The signed BIGINT value of a hash given as unsigned or as signed."""
    u = to_unsigned(value)
    return u - (1 << 64) if u > INT64_MAX else u


def to_bytes(value: int) -> bytes:
    """8 big-endian bytes, as ``numpy.packbits(imagehash_obj.hash.flatten())``."""
    return to_unsigned(value).to_bytes(8, "big")


def from_bytes(data: bytes | bytearray | memoryview) -> int:
    """The unsigned value of 8 big-endian bytes."""
    data = bytes(data)
    if len(data) != 8:
        raise InvalidHash(f"hash bytes {_short(data)}: expected 8 bytes, got {len(data)}")
    return int.from_bytes(data, "big")


def to_imagehash(value: int) -> imagehash.ImageHash:
    """An :class:`imagehash.ImageHash` (8×8) with the same bits."""
    bits = np.unpackbits(np.frombuffer(to_bytes(value), dtype=np.uint8)).astype(bool)
    return imagehash.ImageHash(bits.reshape(8, 8))


def _from_imagehash(h: imagehash.ImageHash) -> int:
    bits = np.asarray(h.hash).flatten()
    if bits.size != 64:
        raise InvalidHash(f"hash {h}: expected a 64-bit (8×8) ImageHash, got {bits.size} bits")
    return int.from_bytes(np.packbits(bits.astype(bool)).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Hamming distance of two hashes (unsigned or signed ints)."""
    return (to_unsigned(a) ^ to_unsigned(b)).bit_count()


def coerce_hash(value: HashLike) -> int:
    """Turn any hash spelling into the unsigned value.

    Accepts 16-hex strings, ints (unsigned 0…2^64-1 or signed BIGINT: the two ranges only
    overlap where both mean the same bits), 8 bytes and ``imagehash.ImageHash``.
    """
    if isinstance(value, imagehash.ImageHash):
        return _from_imagehash(value)
    if isinstance(value, str):
        return from_hex(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return from_bytes(value)
    return to_unsigned(value)


# --- images ------------------------------------------------------------------------------


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    return getattr(source, "name", None) or f"<{type(source).__name__}>"


#: The largest image decoded, in pixels (``$AHASHDB_MAX_PIXELS``; default 64 million, a
#: 61-megapixel camera's photos included). Decoding and converting to grayscale take about
#: 5 bytes a pixel (a 61 MP JPEG: about 360 MB peak for one hashing process); larger images
#: are refused before decoding.
DEFAULT_MAX_PIXELS = 64_000_000


def max_pixels() -> int:
    """The pixel limit in force (``$AHASHDB_MAX_PIXELS``, else DEFAULT_MAX_PIXELS)."""
    raw = os.environ.get("AHASHDB_MAX_PIXELS", "")
    try:
        value = int(raw) if raw else DEFAULT_MAX_PIXELS
    except ValueError:
        raise InvalidInput(f"AHASHDB_MAX_PIXELS {raw!r}: expected a whole number") from None
    if value < 1:
        raise InvalidInput(f"AHASHDB_MAX_PIXELS {value}: expected 1 or more")
    return value


#: With ``fast=True`` a JPEG is decoded at 1/4 scale (or the largest reduction that keeps
#: at least this many pixels on its short side) straight to grayscale: the JPEG decoder
#: skips most of its work, and the hash moves by a bit on some images.
FAST_MIN_SIDE = 64
#: The largest reduction --fast asks the JPEG decoder for: 1/4 (at 1/8, measured, one photo
#: in 28 moved by 8 bits; at 1/4 none by more than 1, for about a fifth more time).
FAST_MAX_SCALE = 4


def open_image(source: ImageLike, fast: bool = False) -> Image.Image:
    """Open and fully decode an image, turning every failure into :class:`ImageError`.

    Images of more than :func:`max_pixels` pixels, and decompression bombs (more than
    ``PIL.Image.MAX_IMAGE_PIXELS``), are refused before decoding. ``fast=True`` decodes
    JPEGs at reduced scale, in grayscale (see :data:`FAST_MIN_SIDE`); other formats fully.
    """
    return _open(source, fast)[0]


def _open(source: ImageLike, fast: bool) -> tuple[Image.Image, tuple[int, int]]:
    """open_image's work: the image, and its size before any reduced-scale decode."""
    if isinstance(source, Image.Image):
        return source, source.size
    name = _describe(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError(f"{name}: empty input")
        fp: object = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except PermissionError:
            raise ImageError(f"{name}: permission denied") from None
        except OSError as exc:
            raise ImageError(f"{name}: cannot read ({exc.strerror or exc})") from None
        except ValueError:
            raise ImageError(f"{_short(name)}: not a valid path (contains a NUL byte)") from None
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{name}: is a directory, not an image")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{name}: not a regular file")
        if st.st_size == 0:
            raise ImageError(f"{name}: empty file")
        fp = path
    else:
        fp = source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Pillow checks the size in the header, before decoding, and warns (here: fails)
            # past MAX_IMAGE_PIXELS.
            Image.MAX_IMAGE_PIXELS = max_pixels()
            img = Image.open(fp)  # type: ignore[arg-type]
            full_size = img.size
            if fast and img.format == "JPEG":
                scale = max(1, min(FAST_MAX_SCALE, min(img.size) // FAST_MIN_SIDE))
                img.draft("L", (img.width // scale, img.height // scale))
            img.load()
        return img, full_size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found[1]):,} pixels" if found else "too many pixels"
        raise ImageError(
            f"{name}: refused as a decompression bomb ({size}, more than the limit of"
            f" {Image.MAX_IMAGE_PIXELS:,}; raise it with --max-pixels or AHASHDB_MAX_PIXELS)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read") from None
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a directory, not an image") from None
    except OSError as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = f"truncated or corrupt image ({reason})"
        raise ImageError(f"{name}: {reason}") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on corrupt data
        # (struct.error, IndexError, ValueError, SyntaxError, EOFError, ZeroDivisionError…)
        reason = str(exc) or type(exc).__name__
        raise ImageError(f"{name}: corrupt image ({type(exc).__name__}: {reason})") from None


#: Hashes with at most this many bits set, or unset, carry almost no picture: blank,
#: uniform or nearly uniform images, which all "match" each other.
LOW_INFORMATION_BITS = 4


def is_low_information(value: int) -> bool:
    """True for a hash with very few or very many bits set (see LOW_INFORMATION_BITS)."""
    ones = to_unsigned(value).bit_count()
    return ones <= LOW_INFORMATION_BITS or ones >= 64 - LOW_INFORMATION_BITS


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit grayscale scaled to 8 bits; every other image as it is.

    imagehash converts with ``convert("L")``, which clips 16-bit values above 255, so a
    16-bit picture turns almost white and hashes as 0000000000000000. Scaled by 1/257 it
    hashes as what it shows (exactly as its 8-bit original when it was made from one).
    """
    if img.mode not in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        return img
    arr = np.asarray(img)
    if arr.size == 0 or int(arr.max()) <= 255:
        return img  # already in 8-bit range: imagehash's own conversion is exact
    scaled = np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


@functools.lru_cache(maxsize=256)
def _lanczos_weights(full: int, reduced: int, out: int) -> np.ndarray:
    """Weights that resize an axis of ``full`` pixels to ``out`` as Pillow's Lanczos does
    (its Resample.c: the kernel widened by the scale, cut at its support, normalized),
    summed over the blocks of pixels that a reduced-scale JPEG decode averages into one of
    its ``reduced`` pixels: applied to the reduced axis they resize the full one."""
    block = -(-full // reduced)
    scale = full / out
    widen = max(scale, 1.0)
    support = 3.0 * widen
    weights = np.zeros((out, reduced * block))
    for o in range(out):
        center = (o + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), full)
        t = (np.arange(lo, hi) - center + 0.5) / widen
        kernel = np.sinc(t) * np.sinc(t / 3)
        weights[o, lo:hi] = kernel / kernel.sum()
    return weights.reshape(out, reduced, block).sum(axis=2).astype(np.float32)


#: Pillow 13 resizes columns first when the height shrinks by more than twice as many
#: pixels as the width; earlier versions always resize rows first.
_PILLOW_MAY_RESIZE_COLUMNS_FIRST = int(PIL.__version__.split(".")[0]) >= 13


def _resize_as_full(img: Image.Image, full_size: tuple[int, int],
                    size: tuple[int, int]) -> Image.Image:
    """The Lanczos resize to ``size`` of the full-size picture that ``img`` (8-bit
    grayscale) is a reduced-scale decode of, in two passes in the order Pillow takes, each
    rounded and clipped to 8 bits as Pillow's are. Resizing the reduced image itself would
    weigh its pixels by the wrong kernel and move the hash by more."""
    pixels = np.asarray(img, dtype=np.float32)
    across = _lanczos_weights(full_size[0], img.width, size[0])
    down = _lanczos_weights(full_size[1], img.height, size[1])
    shrink_w, shrink_h = full_size[0] - size[0], full_size[1] - size[1]
    if _PILLOW_MAY_RESIZE_COLUMNS_FIRST and shrink_h > 0 and shrink_h > 2 * shrink_w:
        cols = np.clip(np.floor(down @ pixels + 0.5), 0, 255)
        out = np.floor(cols @ across.T + 0.5)
    else:
        rows = np.clip(np.floor(pixels @ across.T + 0.5), 0, 255)
        out = np.floor(down @ rows + 0.5)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


#: The grayscale size each imagehash function resizes to first (with Lanczos), which --fast
#: resizes to from a reduced-scale decode; whash picks its size from the image's own.
_RESIZED_TO: dict[Callable[..., imagehash.ImageHash], tuple[int, int]] = {
    imagehash.average_hash: (8, 8),
    imagehash.dhash: (9, 8),
    imagehash.phash: (32, 32),
}


def image_hash(source: ImageLike, fn: Callable[[Image.Image], imagehash.ImageHash],
               fast: bool = False) -> int:
    """The unsigned value of ``fn(image)`` for an imagehash function making 64-bit hashes
    (``imagehash.average_hash``, ``phash``, ``dhash``, ``whash``), after opening the image
    with every check and scaling 16-bit grayscale to 8 bits; ``fast``: see open_image."""
    img, full_size = _open(source, fast)
    img = _eight_bit(img)
    try:
        if img.size != full_size and img.mode == "L" and fn in _RESIZED_TO:
            img = _resize_as_full(img, full_size, _RESIZED_TO[fn])
        return _from_imagehash(fn(img))
    except Exception as exc:  # noqa: BLE001 - odd modes and sizes fail in Pillow's convert
        raise ImageError(f"{_describe(source)}: cannot hash ({type(exc).__name__}: {exc})") \
            from None


def average_hash(source: ImageLike) -> int:
    """The aHash of an image as an unsigned int, bit-identical to ``imagehash.average_hash``
    for every image except 16-bit grayscale ones, which are scaled to 8 bits first (where
    imagehash clips them to white).

    ``source`` is a path, bytes, a binary file object or a PIL image.
    """
    return image_hash(source, imagehash.average_hash)


#: The 64-bit hashes ahashdb makes and stores (imagehash's functions at hash_size 8); the
#: names are the SQL enum ``ahash_algorithm``'s values.
ALGORITHMS: dict[str, Callable[[Image.Image], imagehash.ImageHash]] = {
    "ahash": imagehash.average_hash,
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "whash": imagehash.whash,
}

#: The threshold a search uses when given none, per algorithm: aHash's customary 10, and for
#: the others the largest threshold that lets through no more unrelated photos than aHash
#: at 10 does (``python benchmarks/algorithms.py``: 28 real photos, 280 edited copies).
DEFAULT_MAX_DISTANCE: dict[str, int] = {"ahash": 10, "phash": 17, "dhash": 9, "whash": 9}

#: Bits per hash; imagehash's hash_size 8 makes 8 x 8 = 64.
HASH_SIZE = 8


def check_algorithm(name: object) -> str:
    """``name`` if it is one of :data:`ALGORITHMS`, else :class:`InvalidInput`."""
    if not isinstance(name, str) or name not in ALGORITHMS:
        raise InvalidInput(f"algorithm {name!r}: expected one of {', '.join(ALGORITHMS)}")
    return name


def hash_image(source: ImageLike, algorithm: str = "ahash", fast: bool = False) -> int:
    """The unsigned 64-bit hash of an image by ``algorithm`` (ahash, phash, dhash, whash),
    bit-identical to imagehash's. ``fast=True`` decodes JPEGs at reduced scale: several
    times faster on camera-size photos; an aHash, dHash or wHash may then differ from
    imagehash's by a bit or two, a pHash by many more (on 28 photos, at most 1, 1, 2 and
    18 bits). Rows hashed so are marked: their hasher's ``decode`` is "reduced"."""
    return image_hash(source, ALGORITHMS[check_algorithm(algorithm)], fast)


def hasher_versions() -> tuple[str, str]:
    """(imagehash version, Pillow version) of this process: recorded with the rows it
    hashes, so hashes made by other versions can be told apart."""
    import importlib.metadata

    try:
        ih = importlib.metadata.version("ImageHash")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - vendored copies
        ih = getattr(imagehash, "__version__", "unknown")
    return ih, PIL.__version__


def is_hash_spelling(value: object) -> bool:
    """True when ``value`` is meant as a hash rather than an image."""
    if isinstance(value, (imagehash.ImageHash, int, np.integer)) and not isinstance(value, bool):
        return True
    if isinstance(value, str):
        digits = _hex_digits(value)
        return len(digits) == 16 and _HEXDIGITS.issuperset(digits) and not os.path.exists(value)
    return False


def hash_of(value: ImageLike | HashLike, algorithm: str = "ahash", fast: bool = False) -> int:
    """The unsigned hash of an image (path, bytes, file, PIL image), hashed by
    ``algorithm`` (``fast``: see :func:`hash_image`), or of a hash spelling (as it is).

    Strings of 16 hex digits are read as hashes unless a file of that name exists; 8-byte
    ``bytes`` are image data here, not hash bytes (use :func:`from_bytes` for those).
    """
    if is_hash_spelling(value):
        return coerce_hash(value)  # type: ignore[arg-type]
    if isinstance(value, str) and not os.path.lexists(value):
        raise InvalidHash(f"{_short(value)}: neither an existing file nor 16 hex digits")
    return hash_image(value, algorithm, fast)  # type: ignore[arg-type]
