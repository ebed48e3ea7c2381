"""Duplicate groups and pairs equal brute force: connected components of the graph of
rows within T bits, and every pair with its distance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from ahashdb import HashStore
from ahashdb.cli import app
from ahashdb.duplicates import components, pairs_within

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import datagen  # noqa: E402

runner = CliRunner()


def brute_pairs(values: np.ndarray, t: int) -> set[tuple[int, int]]:
    d = np.bitwise_count(values[:, None] ^ values[None, :])
    i, j = np.nonzero(np.triu(d <= t, 1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def brute_groups(ids: list[int], hashes: list[int], t: int) -> list[list[int]]:
    """Connected components by depth-first search over all pairs (with their sizes >= 2)."""
    h = np.array(hashes, dtype=np.uint64)
    near = np.bitwise_count(h[:, None] ^ h[None, :]) <= t
    seen, out = set(), []
    for start in range(len(ids)):
        if start in seen:
            continue
        stack, comp = [start], []
        seen.add(start)
        while stack:
            k = stack.pop()
            comp.append(ids[k])
            for m in np.flatnonzero(near[k]).tolist():
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        if len(comp) > 1:
            out.append(sorted(comp))
    return sorted(out, key=lambda g: (-len(g), g[0]))


@given(st.lists(st.integers(0, (1 << 64) - 1), min_size=0, max_size=60, unique=True),
       st.integers(0, 20), st.data())
def test_pairs_within_equals_brute_force(base: list[int], t: int, data) -> None:  # noqa: ANN001
    # Add near copies of the drawn values so there are pairs at every distance.
    extra = [v ^ sum(1 << b for b in data.draw(st.sets(st.integers(0, 63), max_size=8)))
             for v in base[:20]]
    values = np.unique(np.array(base + extra, dtype=np.uint64))
    a, b = pairs_within(values, t)
    got = list(zip(a.tolist(), b.tolist(), strict=True))
    assert len(got) == len(set(got))  # each pair once
    assert set(got) == brute_pairs(values, t)


def test_components_of_a_chain_and_isolated_nodes() -> None:
    labels = components(6, np.array([0, 1, 4]), np.array([1, 2, 5]))
    assert labels.tolist() == [0, 0, 0, 3, 4, 4]


@pytest.mark.parametrize("t", range(0, 9))
def test_groups_and_pairs_on_10000_rows_equal_brute_force(store: HashStore, t: int) -> None:
    if store.count(1) != 10_000:
        store.connection.execute("TRUNCATE image_hashes RESTART IDENTITY")
        _, hashes = datagen.clustered(10_000, 1, seed=3)
        rows = [(int(h), 1, i) for i, h in enumerate(hashes.tolist())]
        rows += [(int(hashes[i]), 1, 20_000 + i) for i in range(0, 300, 3)]  # exact copies
        store.insert_many(rows)
    ids, hashes = map(list, zip(*store.connection.execute(
        "SELECT id, hash FROM image_hashes WHERE company_id = 1 ORDER BY id"), strict=True))
    hashes = [h & ((1 << 64) - 1) for h in hashes]
    expect = brute_groups(ids, hashes, t)
    got = list(store.duplicates(company_id=1, max_distance=t))
    assert [[m.id for m in g] for g in got] == expect
    by_id = dict(zip(ids, hashes, strict=True))
    for g in got[:50]:
        first = by_id[g[0].id]
        assert all(m.distance == (by_id[m.id] ^ first).bit_count() for m in g)
    pairs = list(store.duplicate_pairs(company_id=1, max_distance=t))
    h = np.array(hashes, dtype=np.uint64)
    i, j = np.nonzero(np.triu(np.bitwise_count(h[:, None] ^ h[None, :]) <= t, 1))
    expect_pairs = {(ids[x], ids[y], int(np.bitwise_count(h[x] ^ h[y])))
                    for x, y in zip(i.tolist(), j.tolist(), strict=True)}
    assert len(pairs) == len(expect_pairs) and set(pairs) == expect_pairs
    assert [d for _, _, d in pairs] == sorted(d for _, _, d in pairs)


def test_duplicates_command_formats(store: HashStore) -> None:
    store.insert_many([(0x00FF, 1, 1, "a"), (0x00FE, 1, 2, "b"), (0x00FC, 1, 3, "c"),
                       (0xFF00_0000_0000_0000, 1, 4, "d"), (0x00FF, 2, 5, "other tenant")])
    env = {"AHASHDB_DATABASE_URL": store.url}
    r = runner.invoke(app, ["duplicates", "--company-id", "1", "-t", "1", "-f", "nl"], env=env)
    assert r.exit_code == 0, r.output
    groups = [json.loads(line) for line in r.stdout.splitlines()]
    assert [[m["meta_id"] for m in g["members"]] for g in groups] == [[1, 2, 3]]
    assert [m["distance"] for m in groups[0]["members"]] == [0, 1, 2]
    r = runner.invoke(app, ["duplicates", "--company-id", "1", "-t", "1", "-f", "json"],
                      env=env)
    assert json.loads(r.stdout) == groups
    r = runner.invoke(app, ["duplicates", "--company-id", "1", "-t", "1", "--pairs", "-f",
                            "csv"], env=env)
    assert r.stdout.splitlines() == ["id_a,id_b,distance", "1,2,1", "2,3,1"]
    r = runner.invoke(app, ["duplicates", "--company-id", "1", "-t", "0"], env=env)
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2  # the header only
    r = runner.invoke(app, ["duplicates", "--company-id", "1", "-t", "2"], env=env)
    assert [line.split()[:4] for line in r.stdout.splitlines()[2:]] == [
        ["1", "3", "1", "1"], ["1", "3", "2", "2"], ["1", "3", "3", "3"]]
    r = runner.invoke(app, ["duplicates", "--company-id", "3", "-f", "json"], env=env)
    assert r.stdout == "[]\n"
