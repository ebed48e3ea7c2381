"""aHash-like test data: clustered, spatially correlated 64-bit hashes.

Real aHashes are not uniform: each is an 8×8 grid thresholded at its mean, so neighbouring
bits agree, and near-duplicate images form tight clusters. Centres here are smooth random
8×8 fields thresholded at their mean; members flip a few bits of their centre.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

_Y, _X = np.mgrid[0:8, 0:8].astype(np.float64) / 7.0
_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def smooth_hashes(n: int, rng: np.random.Generator) -> np.ndarray:
    """n hashes of smooth random fields (unsigned 64-bit)."""
    out = np.empty(n, dtype=np.uint64)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        coef = rng.normal(size=(m, 6, 1, 1))
        freq = rng.uniform(0.5, 3.0, size=(m, 2, 1, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(m, 2, 1, 1))
        field = (
            coef[:, 0] * _X
            + coef[:, 1] * _Y
            + coef[:, 2] * np.cos(freq[:, 0] * np.pi * _X + phase[:, 0])
            + coef[:, 3] * np.cos(freq[:, 1] * np.pi * _Y + phase[:, 1])
            + 0.35 * coef[:, 4] * rng.normal(size=(m, 8, 8))
        )
        bits = (field > field.mean(axis=(1, 2), keepdims=True)).reshape(m, 64)
        out[start : start + m] = (bits.astype(np.uint64) * _WEIGHTS).sum(axis=1, dtype=np.uint64)
    return out


def flip_bits(hashes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each hash with counts[i] distinct random bits flipped."""
    out = hashes.copy()
    max_flips = int(counts.max(initial=0))
    if max_flips == 0:
        return out
    order = np.argsort(rng.random((len(hashes), 64)), axis=1)[:, :max_flips].astype(np.uint64)
    for j in range(max_flips):
        active = counts > j
        out[active] ^= np.uint64(1) << order[active, j]
    return out


def clustered(
    n: int, companies: int, seed: int = 1, cluster_size: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    """(company_ids int64, hashes uint64) for n rows of aHash-like clustered data."""
    rng = np.random.default_rng(seed)
    n_centres = max(1, int(n / cluster_size))
    centres = smooth_hashes(n_centres, rng)
    which = rng.integers(0, n_centres, size=n)
    flips = np.minimum(rng.poisson(3.0, size=n), 64)
    hashes = flip_bits(centres[which], flips, rng)
    # A centre's copies mostly stay within one company, as one company's uploads do.
    centre_company = rng.integers(1, companies + 1, size=n_centres)
    company = np.where(
        rng.random(n) < 0.9, centre_company[which], rng.integers(1, companies + 1, size=n)
    )
    return company.astype(np.int64), hashes


def queries(hashes: np.ndarray, n: int, seed: int = 2) -> np.ndarray:
    """n query hashes: stored hashes with 0–6 bits flipped (so most have neighbours)."""
    rng = np.random.default_rng(seed)
    base = hashes[rng.integers(0, len(hashes), size=n)]
    return flip_bits(base, rng.integers(0, 7, size=n), rng)


def to_signed(u: np.ndarray) -> np.ndarray:
    """uint64 → int64 with the same bits (the BIGINT spelling)."""
    return u.view(np.int64)


def rows(companies: np.ndarray, hashes: np.ndarray,
         first_meta: int = 0) -> Iterator[tuple[int, int, int]]:
    """(hash, company_id, meta_id) rows for ``HashStore.insert_many``: the hashes as BIGINTs,
    meta_ids counting up from ``first_meta``."""
    return zip(to_signed(hashes).tolist(), companies.tolist(),
               range(first_meta, first_meta + len(hashes)), strict=True)
