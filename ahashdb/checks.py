"""Argument checks shared by the API's entry points: each raises InvalidInput naming the
argument, so a bad value never reaches SQL."""

from __future__ import annotations

import os

from .errors import InvalidInput
from .hashes import INT64_MAX, INT64_MIN

__all__ = ["check_distance", "check_id", "check_oriented", "check_source"]


def check_id(name: str, value: object) -> int:
    """``value`` as a BIGINT id (ints and digit strings), or InvalidInput naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                value = int(value)
            else:
                raise ValueError
        except ValueError:
            raise InvalidInput(f"{name} {value!r}: expected an integer") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"{name} {value}: outside the BIGINT range -2^63 … 2^63-1")
    return value


def check_distance(name: str, value: object, upper: int | None = 64) -> int:
    """``value`` as a count 0 … ``upper`` (no upper bound when None)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} {value!r}: expected an integer 0 or more")
    if upper is not None and value > upper:
        raise InvalidInput(f"{name} {value}: expected at most {upper}")
    return value


def check_source(source: object) -> str | None:
    """A row's ``source`` as text (paths decoded), refusing NUL bytes."""
    if source is None:
        return None
    if not isinstance(source, str):
        source = os.fsdecode(source) if isinstance(source, (bytes, os.PathLike)) else str(source)
    if "\x00" in source:
        raise InvalidInput(f"source {source[:60]!r}: contains a NUL byte")
    return source


def check_oriented(algorithm: str, orientations: bool) -> str:
    """``algorithm``, refused when ``orientations`` asks for flips of a non-aHash grid."""
    if orientations and algorithm != "ahash":
        raise InvalidInput(
            f"orientations work with ahash only: a flip or rotation permutes aHash's 8x8 grid"
            f" of bits, but not {algorithm}'s")
    return algorithm
