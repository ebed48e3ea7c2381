"""pHash, dHash and wHash stored beside aHash: end to end through the CLI and the API, each
query compares one algorithm's rows only, rows record the versions that made them, and the
migration from revision 0004 keeps every row as an aHash."""

from __future__ import annotations

import json
from pathlib import Path

import imagehash
import psycopg
import pytest
from PIL import Image

from ahashdb import HashStore
from ahashdb.config import libpq_url
from ahashdb.errors import InvalidInput
from ahashdb.hashes import ALGORITHMS, DEFAULT_MAX_DISTANCE, hasher_versions
from ahashdb.store import SCHEMA_REVISION
from tests.imagegen import photo
from tests.test_cli import run

FUNCTIONS = {"ahash": imagehash.average_hash, "phash": imagehash.phash,
             "dhash": imagehash.dhash, "whash": imagehash.whash}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        photo(i, (400, 300)).save(folder / f"{200 + i}.jpg", quality=90)
    return folder


def rows_by_algorithm(store: HashStore) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for alg, meta, h in store.connection.execute(
            "SELECT algorithm::text, meta_id, ahash_to_hex(hash) FROM image_hashes"):
        out.setdefault(alg, {})[meta] = h
    return out


def test_phash_end_to_end_from_the_cli(store: HashStore, photos: Path, tmp_path: Path) -> None:
    url = store.url
    for alg in ("ahash", "phash"):
        r = run(url, "ingest", str(photos), "--company-id", "4", "--algorithm", alg)
        assert r.exit_code == 0, r.output
        assert "6 added, 0 already present, 0 failed" in r.stderr
    # each object now has one hash per algorithm, each equal to imagehash's own
    stored = rows_by_algorithm(store)
    assert set(stored) == {"ahash", "phash"}
    for alg in ("ahash", "phash"):
        assert stored[alg] == {200 + i: str(FUNCTIONS[alg](Image.open(photos / f"{200 + i}.jpg")))
                               for i in range(6)}
    again = run(url, "ingest", str(photos), "--company-id", "4", "-a", "phash")
    assert "0 added, 6 already present" in again.stderr

    copy = tmp_path / "copy.jpg"
    Image.open(photos / "203.jpg").resize((200, 150)).save(copy, quality=60)
    phash_copy = str(imagehash.phash(Image.open(copy)))
    r = run(url, "hash", str(copy), "--algorithm", "phash")
    assert r.exit_code == 0 and r.stdout.split()[0] == phash_copy

    r = run(url, "query", str(copy), "--company-id", "4", "--algorithm", "phash", "-f", "nl")
    assert r.exit_code == 0, r.output
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    assert hits and hits[0]["meta_id"] == 203
    assert hits[0]["distance"] == (imagehash.hex_to_hash(stored["phash"][203])
                                   - imagehash.hex_to_hash(phash_copy))
    # every row a pHash query returns is a stored pHash, at its pHash distance
    assert {h["hash"] for h in hits} <= set(stored["phash"].values())

    # an aHash query (the default) never returns a pHash row, even one of equal value
    for meta in range(200, 206):
        r = run(url, "query", "--hash", stored["phash"][meta], "--company-id", "4",
                "-t", "64", "-f", "nl")
        hits = [json.loads(line) for line in r.stdout.splitlines()]
        ahash_ids = {rid for (rid,) in store.connection.execute(
            "SELECT id FROM image_hashes WHERE algorithm = 'ahash'")}
        assert len(hits) == 6 and {h["id"] for h in hits} == ahash_ids
    r = run(url, "query", "--meta-id", "203", "--company-id", "4", "-a", "phash",
            "--nearest", "2", "-f", "nl")
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(hits) == 2 and all(h["hash"] in stored["phash"].values() for h in hits)
    assert 203 not in {h["meta_id"] for h in hits}

    r = run(url, "stats", "--company-id", "4", "-f", "json")
    s = json.loads(r.stdout)
    assert s["algorithms"] == {"ahash": 6, "phash": 6}
    ih, pil = hasher_versions()
    assert s["hashed_by"] == [
        {"algorithm": a, "hash_size": 8, "imagehash": ih, "pillow": pil, "decode": "full",
         "rows": 6}
        for a in ("ahash", "phash")]
    r = run(url, "stats")
    assert f"phash: imagehash {ih}, Pillow {pil}, 8x8 — 6 rows" in r.stdout


def test_every_algorithm_through_the_api(store: HashStore, photos: Path) -> None:
    paths = sorted(photos.iterdir())
    for alg in ALGORITHMS:
        for n, path in enumerate(paths):
            assert store.insert(path, company_id=1, meta_id=n, algorithm=alg) is not None
    stored = rows_by_algorithm(store)
    for alg, fn in FUNCTIONS.items():
        expected = {n: str(fn(Image.open(p))) for n, p in enumerate(paths)}
        assert stored[alg] == expected
        assert store.hashes_of(company_id=1, meta_id=2, algorithm=alg)[0][1] == expected[2]
        found = store.search(paths[2], company_id=1, max_distance=0, algorithm=alg)
        assert [(m.meta_id, m.hash) for m in found] == [(2, expected[2])]
        top = store.nearest(expected[4], company_id=1, k=3, algorithm=alg)
        assert top[0].meta_id == 4 and top[0].distance == 0
        assert {m.hash for m in top} <= set(expected.values())
        assert store.count(1, algorithm=alg) == len(paths)
    assert store.count(1) == len(paths) * len(ALGORITHMS)
    # images inserted through the API record the versions; a bare hash records none
    store.insert(0x0123456789ABCDEF, company_id=1, meta_id=99, algorithm="whash")
    made = {(a, h is None) for a, h in store.connection.execute(
        "SELECT algorithm::text, hasher FROM image_hashes")}
    assert made == {(a, False) for a in ALGORITHMS} | {("whash", True)}
    versions = store.connection.execute(
        "SELECT DISTINCT k.algorithm::text, k.hash_size, k.imagehash_version, k.pillow_version"
        " FROM image_hashes h JOIN ahash_hashers k ON k.id = h.hasher ORDER BY 1").fetchall()
    assert versions == sorted((a, 8, *hasher_versions()) for a in ALGORITHMS)


def test_duplicates_and_insert_many_keep_algorithms_apart(store: HashStore) -> None:
    base = 0xF0F0_F0F0_0F0F_0F0F
    store.insert_many([(base, 3, 1), (base ^ 1, 3, 2)], algorithm="ahash")
    store.insert_many([(base, 3, 1), (base ^ 3, 3, 3), (base ^ 0xFF00, 3, 4)],
                      algorithm="dhash")
    ahash_groups = [[m.meta_id for m in g]
                    for g in store.duplicates(company_id=3, max_distance=4)]
    dhash_groups = [[m.meta_id for m in g]
                    for g in store.duplicates(company_id=3, max_distance=4, algorithm="dhash")]
    assert ahash_groups == [[1, 2]] and dhash_groups == [[1, 3]]  # 4 is alone
    dhash_ids = {rid for (rid,) in store.connection.execute(
        "SELECT id FROM image_hashes WHERE algorithm = 'dhash'")}
    pairs = list(store.duplicate_pairs(company_id=3, max_distance=2, algorithm="dhash"))
    assert [d for _, _, d in pairs] == [2] and {pairs[0][0], pairs[0][1]} <= dhash_ids
    # a bulk load into a table holding other algorithms keeps both
    assert store.insert_many([(base, 3, 1), (base, 3, 5)], algorithm="phash", bulk=True) == 2
    assert store.count(3, algorithm="phash") == 2 and store.count(3) == 7


def test_orientations_and_unknown_algorithms_are_refused_in_one_line(
    store: HashStore, photos: Path
) -> None:
    with pytest.raises(InvalidInput, match="orientations work with ahash only"):
        store.search(0, company_id=1, orientations=True, algorithm="phash")
    with pytest.raises(InvalidInput, match="algorithm 'md5': expected one of ahash, phash"):
        store.search(0, company_id=1, algorithm="md5")
    r = run(store.url, "query", str(photos / "200.jpg"), "--company-id", "1", "-a", "dhash",
            "--orientations")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert "--orientations works with --algorithm ahash only" in r.stderr
    r = run(store.url, "ingest", str(photos), "--company-id", "1", "--algorithm", "md5")
    assert r.exit_code == 2 and "md5" in r.output and store.count() == 0


def test_migration_from_0004_marks_rows_ahash_and_downgrade_never_drops_rows(
    make_database,  # noqa: ANN001
) -> None:
    url = make_database("algorithms_upgrade")
    with HashStore(url, auto_migrate=False) as store, \
            psycopg.connect(libpq_url(url), autocommit=True) as raw:
        store.migrate("0004")
        raw.execute("INSERT INTO image_hashes (company_id, meta_id, hash, source)"
                    " SELECT 1, g, g * 7919, 'p' || g FROM generate_series(1, 500) g")
        before = raw.execute("SELECT id, company_id, meta_id, hash, source FROM image_hashes"
                             " ORDER BY id").fetchall()
        store.migrate()
        after = raw.execute("SELECT id, company_id, meta_id, hash, source, algorithm::text,"
                            " hasher FROM image_hashes ORDER BY id").fetchall()
        assert [r[:5] for r in after] == before
        assert {(r[5], r[6]) for r in after} == {("ahash", None)}
        assert [m.meta_id for m in store.search(7919 * 42, company_id=1, max_distance=0)] \
            == [42]
        # the same (company, object, value) may now be stored once per algorithm
        assert store.insert(7919 * 42, company_id=1, meta_id=42, algorithm="phash") is not None
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState,
                           match="1 rows of image_hashes are pHash, dHash or wHash"):
            store.downgrade("0004")
        assert store.count() == 501 and store.schema_revision() == SCHEMA_REVISION
        raw.execute("DELETE FROM image_hashes WHERE algorithm <> 'ahash'")
        store.downgrade("0004")
        assert raw.execute("SELECT id, company_id, meta_id, hash, source FROM image_hashes"
                           " ORDER BY id").fetchall() == before


def test_each_algorithm_has_its_own_default_threshold(store: HashStore) -> None:
    for alg, t in DEFAULT_MAX_DISTANCE.items():
        rows = [((1 << d) - 1, 6, d) for d in (t - 1, t, t + 1)]  # d bits from 0
        store.insert_many(rows, algorithm=alg)
        assert [m.distance for m in store.search(0, company_id=6, algorithm=alg)] == [t - 1, t]
        r = run(store.url, "query", "--hash", "0000000000000000", "--company-id", "6",
                "-a", alg, "-f", "nl")
        assert [json.loads(line)["distance"] for line in r.stdout.splitlines()] == [t - 1, t]
    assert DEFAULT_MAX_DISTANCE["ahash"] == 10


def test_every_algorithm_has_its_own_code_in_the_chunk_index_key(store: HashStore) -> None:
    """algorithm_code (the chunk indexes' smallint key) is distinct for every label of the
    enum, in the enum's order, and stored rows carry their algorithm's code."""
    conn = store.connection
    labels = conn.execute("SELECT a::text, ahash_algorithm_code(a)"
                          " FROM unnest(enum_range(NULL::ahash_algorithm)) AS a").fetchall()
    assert [label for label, _ in labels] == list(ALGORITHMS)
    assert [code for _, code in labels] == list(range(len(ALGORITHMS)))
    for algorithm in ALGORITHMS:
        store.insert_many([(0x1234, 1, 1)], algorithm=algorithm)
    assert conn.execute("SELECT count(*) FROM image_hashes"
                        " WHERE algorithm_code <> ahash_algorithm_code(algorithm)"
                        ).fetchone()[0] == 0
    assert conn.execute("SELECT count(DISTINCT algorithm_code) FROM image_hashes"
                        ).fetchone()[0] == len(ALGORITHMS)
