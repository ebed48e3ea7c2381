"""ahashdb on a live Citus cluster: a coordinator and two workers on 127.0.0.1 (a third joins
for the rebalance), built from the embedded PostgreSQL with Citus (tests/citus_cluster.py).

Every answer is checked against brute force over the cluster's own rows, and against the
same rows on the single-node test database. Without Citus installed these tests skip with
the reason; with ``AHASHDB_REQUIRE_CITUS=1`` (CI) a missing Citus fails them.
"""

from __future__ import annotations

import csv
import io
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image
from typer.testing import CliRunner

from ahashdb import HashStore
from ahashdb.cli import app
from ahashdb.errors import InvalidInput
from ahashdb.hashes import to_hex, to_signed
from ahashdb.samples import write_demo
from tests import citus_cluster
from tests.imagegen import photo

runner = CliRunner()
SHARDS = 8


def cli(url: str, *args: str):  # noqa: ANN201
    return runner.invoke(app, ["--database-url", url, *args])


def require_citus() -> None:
    """Skip without Citus, with the reason; fail instead where it is required (CI)."""
    if citus_cluster.installed_bindir() is None:
        if os.environ.get(citus_cluster.ENV_REQUIRE):
            pytest.fail(citus_cluster.missing_reason())
        pytest.skip(citus_cluster.missing_reason())


@pytest.fixture(scope="module")
def cluster() -> Iterator[citus_cluster.CitusCluster]:
    require_citus()
    c = citus_cluster.CitusCluster.create(workers=2)
    try:
        yield c
    finally:
        c.destroy()


def node_of(conn: psycopg.Connection, company: int) -> str:
    row = conn.execute(
        "SELECT nodename || ':' || nodeport FROM citus_shards WHERE shardid ="
        " get_shard_id_for_distribution_column('image_hashes', %s)", (company,)).fetchone()
    return row[0]


@pytest.fixture(scope="module")
def loaded(cluster: citus_cluster.CitusCluster,
           tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The cluster migrated, images ingested into company 1 before `citus enable` and into a
    company held by the other worker after it, and synthetic rows (both load paths)."""
    url = cluster.url()
    demo = tmp_path_factory.mktemp("citus-demo")
    write_demo(demo, count=150, size=(160, 120))
    assert cli(url, "migrate").exit_code == 0
    result = cli(url, "ingest", str(demo / "originals"), "--company-id", "1")
    assert result.exit_code == 0, result.output
    result = cli(url, "citus", "enable", "--shard-count", str(SHARDS))
    assert result.exit_code == 0, result.output
    assert "image_hashes: distributed by company_id" in result.output
    with cluster.connect() as conn:
        first = node_of(conn, 1)
        other = next(c for c in range(2, 200) if node_of(conn, c) != first)
        third = next(c for c in range(other + 1, 400) if node_of(conn, c) == first)
    result = cli(url, "ingest", str(demo / "originals"), "--company-id", str(other))
    assert result.exit_code == 0, result.output
    assert "150 added" in result.output
    rng = random.Random(16)
    centers = [rng.getrandbits(64) for _ in range(40)]
    rows = []
    for i in range(3000):
        h = centers[i % 40] ^ sum(1 << b for b in rng.sample(range(64), rng.randint(0, 9)))
        rows.append((h, (1, other, third)[i % 3], 50_000 + i, f"syn/{i}"))
    with HashStore(url) as store:
        assert store.insert_many(rows[:2000]) == 2000
        assert store.insert_many(rows[2000:], bulk=True) == 1000
    return {"url": url, "demo": demo, "companies": (1, other, third), "centers": centers}


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def all_rows(url: str) -> list[tuple[int, int, int, int, str | None]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, company_id, meta_id, hash, source FROM image_hashes"
                            " WHERE algorithm = 'ahash'").fetchall()


def brute(rows: list, h: int, t: int, company: int | None) -> list[tuple[int, int]]:
    """(distance, id) of rows within t of unsigned h, nearest first."""
    return sorted((bin((r[3] & (2**64 - 1)) ^ h).count("1"), r[0]) for r in rows
                  if (company is None or r[1] == company)
                  and bin((r[3] & (2**64 - 1)) ^ h).count("1") <= t)


def test_rows_live_on_both_workers_and_stats_say_so(loaded: dict,
                                                    cluster: citus_cluster.CitusCluster) -> None:
    with HashStore(loaded["url"]) as store:
        s = store.stats()
        status = store.citus_status()
    c1, c2, c3 = loaded["companies"]
    assert s["companies"] == {c1: 150 + 1000, c2: 150 + 1000, c3: 1000}
    per_node = s["citus_rows_per_node"]
    workers = {f"127.0.0.1:{w.port}" for w in cluster.workers}
    assert set(per_node) == workers and sum(per_node.values()) == 3300
    assert all(n > 0 for n in per_node.values())
    assert status["distributed"] and status["shard_count"] == SHARDS
    assert {p["node"] for p in status["image_hashes_placements"]} == workers
    assert status["tables"] == {"ahash_chunk_masks": "reference", "ahash_hashers": "reference",
                                "ahash_api_keys": "reference", "image_hashes": "distributed",
                                "ahash_sources": "distributed",
                                "ahash_decisions": "distributed"}
    # The coordinator keeps no rows of its own: they moved to the workers at `enable`.
    with psycopg.connect(loaded["url"]) as conn:
        local = conn.execute("SELECT pg_relation_size('image_hashes')").fetchone()[0]
        assert local == 0
    text = cli(loaded["url"], "stats").output
    assert all(f"rows on {w}" in text for w in workers)
    assert "already distributed" in cli(loaded["url"], "citus", "enable").output


def test_searches_equal_brute_force_and_one_node(loaded: dict, store: HashStore) -> None:
    url = loaded["url"]
    rows = all_rows(url)
    # The same rows on one server (the single-node test database).
    store.insert_many([(r[3] & (2**64 - 1), r[1], r[2], r[4]) for r in rows])
    by_id = {r[0]: (r[1], r[2]) for r in rows}
    with HashStore(url) as dist:
        for company in loaded["companies"]:
            def keyed(groups, ids) -> list:  # noqa: ANN001 - groups of Match, by object
                return sorted(sorted(ids(m) for m in g) for g in groups)

            got = keyed(dist.duplicates(company_id=company, max_distance=4),
                        lambda m: by_id[m.id])
            one = keyed(store.duplicates(company_id=company, max_distance=4),
                        lambda m: (m.company_id, m.meta_id))
            assert got == one and len(got) > 10
            pairs = sorted((d, *sorted((by_id[a], by_id[b])))
                           for a, b, d in dist.duplicate_pairs(company_id=company,
                                                               max_distance=6))
            assert len(pairs) > 10
            one_ids = {r[0]: (r[1], r[2]) for r in all_rows(store.url)}
            assert pairs == sorted((d, *sorted((one_ids[a], one_ids[b])))
                                   for a, b, d in store.duplicate_pairs(
                                       company_id=company, max_distance=6))
    rng = random.Random(7)
    queries = [c ^ (1 << rng.randrange(64)) for c in loaded["centers"][:12]]
    queries += [rng.getrandbits(64) for _ in range(3)]
    with HashStore(url) as dist:
        for h in queries:
            for company in (*loaded["companies"], None):
                for t in (0, 4, 10, 12):
                    got = dist.search(h, company_id=company, all_companies=company is None,
                                      max_distance=t)
                    assert [(m.distance, m.id) for m in got] == brute(rows, h, t, company)
                    one = store.search(h, company_id=company, all_companies=company is None,
                                       max_distance=t)
                    assert sorted((m.distance, m.company_id, m.meta_id) for m in got) == \
                        sorted((m.distance, m.company_id, m.meta_id) for m in one)
                limited = dist.search(h, company_id=company, all_companies=company is None,
                                      max_distance=12, limit=3)
                assert [(m.distance, m.id) for m in limited] == brute(rows, h, 12, company)[:3]
                for k in (1, 10):
                    near = dist.nearest(h, company_id=company, all_companies=company is None,
                                        k=k)
                    want = brute(rows, h, 64, company)[:k]
                    assert [(m.distance, m.id) for m in near] == want


def test_query_forms_from_the_cli(loaded: dict) -> None:
    url, demo = loaded["url"], loaded["demo"]
    c1, c2, _ = loaded["companies"]
    copies = sorted(str(p) for p in (demo / "copies").glob("*.jpg"))
    found = table(cli(url, "query", *copies, "--company-id", str(c2), "-f", "csv").output)
    assert {r["company_id"] for r in found} == {str(c2)}
    assert {"1000", "1006", "1012"} <= {r["meta_id"] for r in found}
    every = table(cli(url, "query", copies[0], "--all-companies", "-f", "csv").output)
    assert {(r["company_id"], r["meta_id"]) for r in every} >= {(str(c1), "1000"),
                                                                 (str(c2), "1000")}
    by_hash = cli(url, "query", "--hash", "f0e0e0e0e0e0e0f0", "--company-id", str(c2),
                  "--max-distance", "64", "--limit", "5", "-f", "csv")
    assert by_hash.exit_code == 0 and len(by_hash.output.strip().splitlines()) == 6
    by_meta = cli(url, "query", "--meta-id", "1000", "--company-id", str(c2), "--nearest", "3",
                  "-f", "csv")
    near = table(by_meta.output)
    assert by_meta.exit_code == 0 and len(near) == 3
    assert {r["company_id"] for r in near} == {str(c2)} and "1000" not in {
        r["meta_id"] for r in near}
    with HashStore(url) as store:
        with Image.open(demo / "originals" / "1000.jpg") as img:
            flipped = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        found = store.search(flipped, company_id=c2, orientations=True, max_distance=2)
        assert any(m.meta_id == 1000 and m.orientation not in (None, "original")
                   for m in found), found
        groups = [g for g in store.duplicates(company_id=c2, max_distance=4)]
    listed = table(cli(url, "duplicates", "--company-id", str(c2), "-t", "4", "-f",
                       "csv").output)
    assert groups and len(listed) == sum(len(g) for g in groups)
    assert {r["group"] for r in listed} == {str(i + 1) for i in range(len(groups))}


def test_sql_functions_from_psql_shape(loaded: dict) -> None:
    """The README's SQL, as literal statements (the way psql sends them)."""
    c1 = loaded["companies"][0]
    with psycopg.connect(loaded["url"], autocommit=True) as conn:
        h = conn.execute("SELECT hash FROM image_hashes WHERE company_id = %s AND meta_id = 1000",
                         (c1,)).fetchone()[0]
        hexed = conn.execute(f"SELECT ahash_to_hex({h})").fetchone()[0]
        assert hexed == to_hex(h & (2**64 - 1))
        assert conn.execute(f"SELECT ahash_from_hex('{hexed}')").fetchone()[0] == h
        found = conn.execute(
            f"SELECT meta_id, distance FROM ahash_search({c1}, ahash_from_hex('{hexed}'), 0)"
        ).fetchall()
        assert (1000, 0) in found
        found = conn.execute(f"SELECT meta_id FROM ahash_nearest({c1}, {h}, 1)").fetchall()
        assert found == [(1000,)]
        # Hamming distance through the index, joined back with a plain query.
        n = conn.execute(f"SELECT count(*) FROM image_hashes WHERE company_id = {c1}"
                         f" AND ahash_distance(hash, {h}) <= 10").fetchone()[0]
        assert n >= 1


def test_company_scoped_calls_are_delegated_to_the_owning_worker(loaded: dict) -> None:
    c1, c2, _ = loaded["companies"]
    with psycopg.connect(loaded["url"], autocommit=True) as conn:
        notes: list[tuple[str, str, str | None]] = []
        conn.add_notice_handler(lambda d: notes.append(
            (d.severity, d.message_primary or "", d.message_detail)))
        conn.execute("SET client_min_messages = debug1")
        conn.execute("SET citus.log_remote_commands = on")
        for company in (c1, c2):
            owner = node_of(conn, company)
            for statement, args in (
                ("SELECT * FROM ahash_search(%s, %s, %s, %s, %s::ahash_algorithm)",
                 (company, 12345, 10, None, "ahash")),
                ("SELECT * FROM ahash_nearest(%s, %s, %s, %s::ahash_algorithm)",
                 (company, 12345, 5, "ahash")),
            ):
                notes.clear()
                rows = conn.execute(statement, args).fetchall()  # the API's own statements
                assert ("DEBUG", "pushing down the function call", None) in notes
                remote = [n for n in notes if n[1].startswith("issuing ")]
                # one command, to the one worker that holds the company
                assert len(remote) == 1, remote
                assert f"@{owner} " in remote[0][2]
                assert "FROM public.ahash_" in remote[0][1]
                if "nearest" in statement:
                    assert len(rows) == 5


def test_check_and_insert_on_the_cluster(loaded: dict) -> None:
    _, c2, _ = loaded["companies"]
    with HashStore(loaded["url"]) as store:
        h = loaded["centers"][5]
        first = store.insert_if_new(h ^ 0b1, company_id=c2, meta_id=990_001, max_distance=0)
        again = store.insert_if_new(h ^ 0b1, company_id=c2, meta_id=990_002, max_distance=0)
        assert first.stored and not again.stored
        assert [m.meta_id for m in again.matches] == [990_001]
        assert store.delete(company_id=c2, meta_id=990_001) == 1
        left = store.search(h ^ 0b1, company_id=c2, max_distance=0)
        assert all(m.meta_id != 990_001 for m in left)


def test_row_level_security_with_set_local(loaded: dict,
                                           cluster: citus_cluster.CitusCluster) -> None:
    url = loaded["url"]
    c1, c2, _ = loaded["companies"]
    assert cli(url, "rls", "enable").exit_code == 0
    try:
        with cluster.connect() as conn:
            conn.execute("DROP ROLE IF EXISTS citus_app")
            conn.execute("CREATE ROLE citus_app LOGIN")
            conn.execute("GRANT SELECT ON image_hashes, ahash_chunk_masks TO citus_app")
        app_url = url.replace("postgres@", "citus_app@")
        h = loaded["centers"][0]
        with psycopg.connect(app_url) as conn:
            for tenant in (c1, c2):
                with conn.transaction():
                    conn.execute(f"SET LOCAL ahashdb.company_id = '{tenant}'")
                    seen = conn.execute("SELECT DISTINCT company_id FROM image_hashes").fetchall()
                    assert seen == [(tenant,)]
                    own = conn.execute("SELECT count(*) FROM ahash_search(%s, %s, 64)",
                                       (tenant, to_signed(h))).fetchone()[0]
                    other = c2 if tenant == c1 else c1
                    foreign = conn.execute("SELECT count(*) FROM ahash_search(%s, %s, 64)",
                                           (other, to_signed(h))).fetchone()[0]
                    assert own > 0 and foreign == 0
            with conn.transaction():  # no company: nothing
                assert conn.execute("SELECT count(*) FROM image_hashes").fetchone()[0] == 0
        # A session-level company would reach no worker, so every read would be empty:
        # HashStore(tenant=…) says so instead of answering nothing.
        with pytest.raises(InvalidInput, match="SET LOCAL"):
            HashStore(app_url, tenant=c1).count(company_id=c1)
        with HashStore(url, tenant=c1) as owner:  # the owner is not under the policy
            assert owner.count(company_id=c1) == 1150
        strict = cli(url, "rls", "enable", "--strict")
        assert strict.exit_code == 1 and "trusted mode" in strict.output
    finally:
        assert cli(url, "rls", "disable").exit_code == 0


def test_partition_is_refused_on_a_distributed_table(loaded: dict) -> None:
    result = cli(loaded["url"], "partition", "4")
    assert result.exit_code == 1
    assert "distributed by Citus" in result.output
    with HashStore(loaded["url"]) as store, pytest.raises(InvalidInput):
        store.partition(4)
    assert store.partitions() == 1


def test_migrate_on_a_distributed_database(loaded: dict) -> None:
    """Downgrade one revision (drops ahash_sources) and upgrade: the table comes back as a
    local table and `migrate` distributes it again; the functions keep per-call plans."""
    url = loaded["url"]
    _, c2, _ = loaded["companies"]
    with HashStore(url) as store:
        before = store.search(loaded["centers"][3], company_id=c2, max_distance=10)
        store.downgrade("0012")
        store.migrate()
        status = store.citus_status()
        assert status["tables"]["ahash_sources"] == "distributed"
        after = store.search(loaded["centers"][3], company_id=c2, max_distance=10)
    assert after == before and before
    with psycopg.connect(url) as conn:
        on_workers = conn.execute(
            "SELECT result FROM run_command_on_workers($$SELECT proconfig::text FROM pg_proc"
            " WHERE proname = 'ahash_search_index'$$)").fetchall()
    assert on_workers and all("force_custom_plan" in r[0] for r in on_workers)


def test_worker_down_names_the_node_and_spares_the_others(
        loaded: dict, cluster: citus_cluster.CitusCluster, tmp_path: Path) -> None:
    url = loaded["url"]
    c1, c2, _ = loaded["companies"]
    with cluster.connect() as conn:
        down_node = node_of(conn, c2)
    down = next(w for w in cluster.workers if f"127.0.0.1:{w.port}" == down_node)
    h = loaded["centers"][1]
    with HashStore(url) as store:
        before = store.count(company_id=c2)
        expected_c1 = store.search(h, company_id=c1, max_distance=10)
    cluster.stop_node(down)
    try:
        result = cli(url, "query", "--hash", to_hex(h), "--company-id", str(c2))
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and down_node in lines[0], result.output
        with HashStore(url) as store:
            assert store.search(h, company_id=c1, max_distance=10) == expected_c1
        folder = tmp_path / "late"
        folder.mkdir()
        for i in range(6):
            photo(500 + i, (160, 120)).save(folder / f"{7000 + i}.jpg")
        failed = cli(url, "ingest", str(folder), "--company-id", str(c2))
        assert failed.exit_code == 1 and down_node in failed.output
    finally:
        cluster.start_node(down)
    with HashStore(url) as store:
        assert store.count(company_id=c2) == before  # nothing partial
    again = cli(url, "ingest", str(folder), "--company-id", str(c2))
    assert again.exit_code == 0, again.output
    with HashStore(url) as store:
        assert store.count(company_id=c2) == before + 6


def test_rebalance_onto_a_third_worker_keeps_every_answer(
        loaded: dict, cluster: citus_cluster.CitusCluster) -> None:
    url = loaded["url"]
    rows = all_rows(url)
    queries = loaded["centers"][:6]
    scopes = (*loaded["companies"], None)

    def answers(store: HashStore) -> list:
        return [[(m.distance, m.id) for m in store.search(
            h, company_id=c, all_companies=c is None, max_distance=10)]
            for h in queries for c in scopes]

    with HashStore(url) as store:
        expected = answers(store)
    assert expected == [brute(rows, h, 10, c) for h in queries for c in scopes]
    new = cluster.add_worker()
    mismatches: list = []
    searched = 0
    stop = threading.Event()

    def search_during_move() -> None:
        nonlocal searched
        with HashStore(url) as store:
            while not stop.is_set() and searched < 2000:
                if answers(store) != expected:
                    mismatches.append(searched)
                searched += 1

    reader = threading.Thread(target=search_during_move)
    reader.start()
    try:
        with cluster.connect() as conn:
            conn.execute("SELECT citus_rebalance_start(shard_transfer_mode := 'block_writes')")
            conn.execute("SELECT citus_rebalance_wait()")
    finally:
        stop.set()
        reader.join()
    assert searched > 0 and mismatches == []
    with HashStore(url) as store:
        assert answers(store) == expected
        placements = store.citus_status()["image_hashes_placements"]
        assert f"127.0.0.1:{new.port}" in {p["node"] for p in placements}
        assert len(placements) == 3


def test_upgrades_that_rewrite_the_table_run_on_a_distributed_database() -> None:
    """A database distributed at revision 0009 upgrades to head in one `migrate`: 0010
    rewrites image_hashes, 0011-0013 add tables, functions and constraints; the new tables
    come out distributed, the rows and their answers unchanged."""
    from ahashdb import citus

    require_citus()
    c = citus_cluster.CitusCluster.create(workers=2)
    try:
        with HashStore(c.url(), auto_migrate=False) as store:
            store.migrate("0009")
            changed = citus.enable(store._raw_connection(), 4)
            assert "image_hashes: distributed by company_id" in changed
            with c.connect() as conn:
                conn.execute("INSERT INTO image_hashes (company_id, meta_id, hash)"
                             " SELECT g % 5 + 1, g, hashtextextended(g::text, 9)"
                             " FROM generate_series(1, 3000) AS g")
            rows = all_rows(c.url())
            store.migrate()
            status = store.citus_status()
            assert status["tables"]["ahash_decisions"] == "distributed"
            assert status["tables"]["ahash_api_keys"] == "reference"
            assert store.count() == 3000
            for r in rows[:20]:
                h = r[3] & (2**64 - 1)
                got = store.search(h, company_id=r[1], max_distance=12)
                assert [(m.distance, m.id) for m in got] == brute(rows, h, 12, r[1])
    finally:
        c.destroy()
