"""Groups of near-duplicate hashes: every pair within T bits, and their connected components.

Exact and all-pairs, without comparing all pairs. Identical hashes are collapsed first
(n copies of one picture are one value with n rows). Then the pigeonhole rule: two hashes
within T bits agree exactly on at least one of any T+1 disjoint parts of their bits. The
values are grouped by each part in turn; small groups are compared pair by pair, and a
large group (values that share a part) is split again on T+1 parts of its remaining bits,
where the same rule holds. A pair is reported by the first part it agrees on, so once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import psycopg

from .hashes import to_hex
from .search import Match, company_hashes, sources

__all__ = ["components", "decided_apart", "duplicate_groups", "duplicate_pairs", "groups",
           "pairs_within"]

SMALL_GROUP = 1024  # groups up to this size are compared pair by pair


def _parts(free: int, count: int) -> list[int]:
    """Split the set bits of ``free`` into ``count`` masks of nearly equal size."""
    bits = [b for b in range(63, -1, -1) if free >> b & 1]
    count = max(1, min(count, len(bits)))
    # Every count-th bit, not runs of neighbours: neighbouring pixels of an aHash agree
    # more often than not, so a run of them has few distinct values and makes big groups.
    return [sum(1 << b for b in bits[k::count]) for k in range(count)]


_EMPTY = np.empty(0, dtype=np.int64)


def _pairs_in_groups(values: np.ndarray, members: np.ndarray, sizes: np.ndarray, t: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs within t inside each group; ``members`` lists the groups' value indices one
    group after another, ``sizes`` their lengths. Groups of similar size are compared
    together, so the work is close to the number of pairs, not groups × largest group."""
    firsts, seconds = [], []
    group_of = np.repeat(np.arange(len(sizes)), sizes)
    lower = 2
    while lower <= sizes.max(initial=0):
        upper = lower * 2 - 1
        chosen = (sizes >= lower) & (sizes <= upper)
        if chosen.any():
            take = chosen[group_of]
            idx, grp = members[take], group_of[take]
            for offset in range(1, int(sizes[chosen].max())):
                same = grp[:-offset] == grp[offset:]
                if not same.any():
                    break
                a, b = idx[:-offset][same], idx[offset:][same]
                close = np.bitwise_count(values[a] ^ values[b]) <= t
                firsts.append(a[close])
                seconds.append(b[close])
        lower = upper + 1
    if not firsts:
        return _EMPTY, _EMPTY
    return np.concatenate(firsts), np.concatenate(seconds)


def _pairs(values: np.ndarray, subset: np.ndarray, group: np.ndarray, free: int, t: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs within t among values[subset] in the same ``group``, where all values of a
    group agree on every bit outside ``free``. All groups are handled in one pass."""
    out_a, out_b = [], []
    parts = _parts(free, t + 1)
    sub = values[subset]
    for k, mask in enumerate(parts):
        keys = sub & np.uint64(mask)
        order = np.lexsort((keys, group))
        k_sorted, g_sorted = keys[order], group[order]
        change = (np.diff(k_sorted) != 0) | (np.diff(g_sorted) != 0)
        starts = np.concatenate(([0], np.flatnonzero(change) + 1))
        sizes = np.diff(np.concatenate((starts, [len(sub)])))
        small = (sizes > 1) & (sizes <= SMALL_GROUP)
        big = sizes > SMALL_GROUP
        in_small = np.repeat(small, sizes)
        a, b = _pairs_in_groups(values, subset[order[in_small]], sizes[small], t)
        found_a, found_b = [a], [b]
        rest = free & ~mask
        if big.any() and rest:
            in_big = np.repeat(big, sizes)
            new_group = np.repeat(np.arange(int(big.sum())), sizes[big])
            ra, rb = _pairs(values, subset[order[in_big]], new_group, rest, t)
            found_a.append(ra)
            found_b.append(rb)
        a_all, b_all = np.concatenate(found_a), np.concatenate(found_b)
        # Once per pair: keep it only here, the first part on which the two agree.
        keep = np.ones(len(a_all), dtype=bool)
        for earlier in parts[:k]:
            m = np.uint64(earlier)
            keep &= (values[a_all] & m) != (values[b_all] & m)
        out_a.append(a_all[keep])
        out_b.append(b_all[keep])
    if not out_a:
        return _EMPTY, _EMPTY
    return np.concatenate(out_a), np.concatenate(out_b)


def pairs_within(values: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of distinct uint64 ``values`` within ``t`` bits of each other."""
    values = np.asarray(values, dtype=np.uint64)
    if t < 0 or len(values) < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if t >= 64:
        i, j = np.triu_indices(len(values), 1)
        return i.astype(np.int64), j.astype(np.int64)
    a, b = _pairs(values, np.arange(len(values)), np.zeros(len(values), dtype=np.int64),
                  (1 << 64) - 1, t)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo, hi


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label (the smallest member index) of each of ``n`` nodes."""
    label = np.arange(n)
    if not len(a):
        return label
    while True:
        # Hook each edge's larger label onto its smaller one, then jump pointers to roots.
        la, lb = label[a], label[b]
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while True:
            nxt = label[label]
            if np.array_equal(nxt, label):
                break
            label = nxt
        if np.array_equal(label[a], label[b]):
            return label


def groups(labels: np.ndarray) -> Iterator[np.ndarray]:
    """Member indices of each component with more than one member, largest first."""
    if not len(labels):
        return
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_labels)) + 1))
    sizes = np.diff(np.concatenate((starts, [len(labels)])))
    for k in np.lexsort((sorted_labels[starts], -sizes)):
        if sizes[k] < 2:
            break
        yield order[starts[k]:starts[k] + sizes[k]]


def duplicate_groups(conn: psycopg.Connection, company_id: int, max_distance: int,
                     algorithm: str) -> Iterator[list[Match]]:
    """Connected groups of one company's rows within ``max_distance`` (see
    :meth:`ahashdb.HashStore.duplicates`)."""
    ids, metas, hashes = company_hashes(conn, company_id, algorithm)
    signed = hashes.view(np.int64)
    values, inverse = np.unique(hashes, return_inverse=True)
    a, b = pairs_within(values, max_distance)
    component = components(len(values), a, b)[inverse]  # per row
    # Name each component by its smallest row id: groups of one size come in id order.
    smallest = np.full(len(values), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, component, ids)
    labels = smallest[component]
    pending: list[np.ndarray] = []

    def flush() -> Iterator[list[Match]]:
        keys = [(int(metas[r]), int(signed[r])) for g in pending for r in g]
        found = sources(conn, company_id, algorithm, keys)
        for g in pending:
            rows = g[np.argsort(ids[g], kind="stable")]
            first = int(hashes[rows[0]])
            yield [Match(int(ids[r]), company_id, int(metas[r]), to_hex(int(hashes[r])),
                         (int(hashes[r]) ^ first).bit_count(),
                         found.get((int(metas[r]), int(signed[r]))))
                   for r in rows]
        pending.clear()

    apart = decided_apart(conn, company_id)
    found_groups: Iterable[np.ndarray] = groups(labels)
    if apart:  # pairs people said are not duplicates: their groups split where they join
        found_groups = sorted(
            (piece for g in found_groups
             for piece in _split(g, ids, hashes, max_distance, apart)),
            key=lambda g: (-len(g), int(ids[g].min())))
    for rows in found_groups:
        pending.append(rows)
        if sum(len(g) for g in pending) >= 10_000:
            yield from flush()
    yield from flush()


def decided_apart(conn: psycopg.Connection, company_id: int) -> set[tuple[int, int]]:
    """Pairs of row ids (smaller first) that people marked "not duplicates"."""
    rows = conn.execute("SELECT id_a, id_b FROM ahash_decisions WHERE company_id = %s"
                        " AND decision = 'not_duplicates'", (company_id,)).fetchall()
    return {(a, b) for a, b in rows}


def _split(group: np.ndarray, ids: np.ndarray, hashes: np.ndarray, t: int,
           apart: set[tuple[int, int]]) -> list[np.ndarray]:
    """``group`` (row indices) as the connected groups of its rows within ``t`` bits,
    without the links of ``apart``; only groups of two or more."""
    members = [int(i) for i in ids[group]]
    if not any((min(x, y), max(x, y)) in apart for k, x in enumerate(members)
               for y in members[k + 1:]):
        return [group]
    h = hashes[group]
    near = np.bitwise_count(h[:, None] ^ h[None, :]) <= t
    for k, x in enumerate(members):
        for j, y in enumerate(members):
            if (min(x, y), max(x, y)) in apart:
                near[k, j] = False
    parent = list(range(len(group)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for k, j in zip(*np.nonzero(np.triu(near, 1)), strict=True):
        parent[root(int(k))] = root(int(j))
    pieces: dict[int, list[int]] = {}
    for k in range(len(group)):
        pieces.setdefault(root(k), []).append(k)
    return [group[np.array(p)] for p in pieces.values() if len(p) > 1]


def duplicate_pairs(conn: psycopg.Connection, company_id: int, max_distance: int,
                    algorithm: str) -> Iterator[tuple[int, int, int]]:
    """Every pair of one company's rows within ``max_distance`` (see
    :meth:`ahashdb.HashStore.duplicate_pairs`)."""
    ids, _, hashes = company_hashes(conn, company_id, algorithm)
    values, inverse = np.unique(hashes, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(values)))
    ends = np.searchsorted(inverse[order], np.arange(len(values)), side="right")
    a, b = pairs_within(values, max_distance)
    dist = np.bitwise_count(values[a] ^ values[b]) if len(a) else np.empty(0, np.uint8)
    out: list[tuple[int, int, int]] = []
    for v in np.flatnonzero(ends - starts > 1):  # identical hashes: distance 0
        rows = sorted(ids[order[starts[v]:ends[v]]].tolist())
        out.extend((x, y, 0) for k, x in enumerate(rows) for y in rows[k + 1:])
    out.sort()
    apart = decided_apart(conn, company_id)
    yield from (p for p in out if (p[0], p[1]) not in apart)
    for k in np.argsort(dist, kind="stable"):
        rows_a = ids[order[starts[a[k]]:ends[a[k]]]].tolist()
        rows_b = ids[order[starts[b[k]]:ends[b[k]]]].tolist()
        d = int(dist[k])
        yield from sorted((min(x, y), max(x, y), d) for x in rows_a for y in rows_b
                          if (min(x, y), max(x, y)) not in apart)
