"""The eight flips and rotations of a hash's 8×8 grid, computed on the bits.

An aHash is an 8×8 grid of bits (row by row, the first row in the most significant byte,
each row's first pixel in its byte's most significant bit). Mirroring or rotating an image
by a multiple of 90° mirrors or rotates that grid, up to the rounding of the resize, so a
flipped or rotated copy of an image is found by searching with the transformed hash: no
decoding of the image again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .hashes import to_unsigned

__all__ = ["ORIENTATIONS", "orientations", "transform"]

#: Names of the transforms of the *stored* image that the query undoes, in a fixed order.
ORIENTATIONS: tuple[str, ...] = (
    "identity", "rotate90", "rotate180", "rotate270",
    "flip_horizontal", "flip_vertical", "transpose", "transverse",
)

_GRID_OPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda g: g,
    "rotate90": lambda g: np.rot90(g, 1),  # counter-clockwise, as PIL's rotate(90)
    "rotate180": lambda g: np.rot90(g, 2),
    "rotate270": lambda g: np.rot90(g, 3),
    "flip_horizontal": lambda g: g[:, ::-1],  # left-right mirror
    "flip_vertical": lambda g: g[::-1, :],
    "transpose": lambda g: g.T,
    "transverse": lambda g: np.rot90(g, 2).T,
}


def _grid(value: int) -> np.ndarray:
    raw = np.frombuffer(to_unsigned(value).to_bytes(8, "big"), dtype=np.uint8)
    return np.unpackbits(raw).reshape(8, 8)


def _value(grid: np.ndarray) -> int:
    return int.from_bytes(np.packbits(np.ascontiguousarray(grid).ravel()).tobytes(), "big")


def transform(value: int, orientation: str) -> int:
    """The hash of the image transformed by ``orientation`` (one of :data:`ORIENTATIONS`)."""
    try:
        op = _GRID_OPS[orientation]
    except KeyError:
        raise ValueError(f"orientation {orientation!r}: expected one of"
                         f" {', '.join(ORIENTATIONS)}") from None
    return _value(op(_grid(value)))


def orientations(value: int) -> dict[str, int]:
    """All eight transformed hashes, by orientation name (identity first)."""
    grid = _grid(value)
    return {name: _value(_GRID_OPS[name](grid)) for name in ORIENTATIONS}
