"""Hash values for database tests: a cluster around one centre, plus unrelated values."""

from __future__ import annotations

import random


def values_near(rng: random.Random, near: int, far: int,
                max_flips: int) -> tuple[int, list[int]]:
    """(centre, values): ``near`` values at most ``max_flips`` bits from a random centre,
    then ``far`` random ones."""
    centre = rng.getrandbits(64)
    values = [centre ^ sum(1 << b for b in rng.sample(range(64), rng.randint(0, max_flips)))
              for _ in range(near)] + [rng.getrandbits(64) for _ in range(far)]
    return centre, values
