"""Promises about bad input, crashes, interruptions, concurrency and database faults, each
tested against the real database (see docs/guarantees.md)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import imagehash
import numpy as np
import psycopg
import pytest
from PIL import Image
from typer.testing import CliRunner

from ahashdb import HashStore
from ahashdb.config import libpq_url
from ahashdb.errors import ImageError
from ahashdb.hashes import average_hash, to_signed
from ahashdb.ingest import ingest_files, items_from_paths
from tests.badimages import BAD, GOOD, write_zoo
from tests.imagegen import photo
from tests.test_cli import run as cli

runner = CliRunner()
CRASH_TRIALS = int(os.environ.get("AHASHDB_CRASH_TRIALS", "20"))


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ahashdb", *args]


def env_for(url: str) -> dict[str, str]:
    return {**os.environ, "AHASHDB_DATABASE_URL": url}


@functools.cache
def _base(seed: int) -> Image.Image:
    return photo(seed, (400, 300))


def photo_folder(folder: Path, n: int, ext: str = "png", scale: int = 1) -> Path:
    """``n`` images named 1.png … n.png: eight pictures at many sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        size = (scale * (200 + i % 151), scale * (150 + i % 67))
        _base(i % 8).resize(size).save(folder / f"{i + 1}.{ext}")
    return folder


def per_meta_counts(store: HashStore, company: int) -> dict[int, int]:
    return dict(store.connection.execute(
        "SELECT meta_id, count(*) FROM image_hashes WHERE company_id = %s GROUP BY meta_id",
        (company,)).fetchall())


# --- 1. bad images ---------------------------------------------------------------------------


def test_every_bad_file_is_skipped_with_its_reason_and_every_good_one_hashes_like_imagehash(
    store: HashStore, tmp_path: Path
) -> None:
    folder = tmp_path / "zoo"
    write_zoo(folder)
    os.symlink("loop_b.jpg", folder / "98.jpg")  # a symlink loop: 98 -> loop_b -> 98
    os.symlink("98.jpg", folder / "loop_b.jpg")
    os.symlink(".", folder / "again")  # a folder loop, which the walk must not follow
    result = cli(store.url, "ingest", str(folder), "--company-id", "1", "--workers", "2")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    for name in [*BAD, "98.jpg"]:
        assert any(line.startswith(f"{folder / name}: ") for line in lines), name
    assert any(str(folder / "13.png") in line and "decompression bomb" in line for line in lines)
    assert any(str(folder / "98.jpg") in line and "symbolic links" in line for line in lines)
    stored = dict(store.connection.execute(
        "SELECT meta_id, hash FROM image_hashes WHERE company_id = 1").fetchall())
    expected = {}
    for name in GOOD:
        with Image.open(folder / name) as img:
            if name == "20.png":  # 16-bit: scaled to 8 bits, the one difference (README)
                img = Image.fromarray((np.asarray(img) // 257).astype(np.uint8), "L")
            expected[int(name.split(".")[0])] = to_signed(int(str(imagehash.average_hash(img)), 16))
    assert stored == expected
    # 'loop_b.jpg' has no integer stem, so it fails for that reason (or for the loop).
    assert f"{len(GOOD)} added, 0 already present, {len(BAD) + 2} failed" in result.stderr


def test_a_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(BAD["13.png"])
    # VmHWM is this process's own peak (ru_maxrss would carry the forking parent's over).
    probe = (
        "import re, sys\n"
        "from ahashdb.hashes import average_hash\n"
        "from ahashdb.errors import ImageError\n"
        "try:\n    average_hash(sys.argv[1])\nexcept ImageError as e:\n    print(e)\n"
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(bomb)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert "decompression bomb" in out[0]
    assert int(out[1]) < 200_000  # KiB: the 10-gigapixel canvas was never allocated


def test_odd_path_names_are_stored_verbatim(store: HashStore, tmp_path: Path) -> None:
    names = ["with space.jpg", "quote's \"double\".jpg", "new\nline.jpg", "ünïcødé 写真.jpg",
             "semi;colon $$ dollar.jpg"]
    records = []
    for i, name in enumerate(names):
        path = tmp_path / name
        photo(20 + i, (200, 150)).save(path, "JPEG")
        records.append({"path": name, "meta_id": i + 1})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = cli(store.url, "ingest", "--manifest", str(manifest), "--company-id", "2")
    assert result.exit_code == 0, result.output
    rows = dict(store.connection.execute(
        "SELECT meta_id, source FROM image_hashes WHERE company_id = 2").fetchall())
    assert rows == {i + 1: str(tmp_path / name) for i, name in enumerate(names)}


def test_a_file_that_vanishes_after_listing_is_reported_and_the_rest_stored(
    store: HashStore, tmp_path: Path
) -> None:
    folder = photo_folder(tmp_path / "vanish", 6)
    items = list(items_from_paths([str(folder)]))  # the listing is done
    (folder / "3.png").unlink()
    errors: list[tuple[str, str]] = []
    summary = ingest_files(store, items, company_id=3, workers=2,
                           on_error=lambda p, r: errors.append((p, r)))
    assert errors == [(str(folder / "3.png"), "no such file")]
    assert (summary.added, summary.failed) == (5, 1)
    assert sorted(per_meta_counts(store, 3)) == [1, 2, 4, 5, 6]


def _without_file_permission_override() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so even root is held to file modes (the interpreter, wherever it lives,
    stays readable: root owns it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_file_is_reported_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "perm"
    folder.mkdir()
    photo(1).save(folder / "1.png")
    photo(2).save(folder / "2.png")
    (folder / "2.png").chmod(0)
    # As root, files are readable whatever their mode; so the command runs without the
    # capabilities that allow that, and needs nothing else (any home, any venv location).
    drop = _without_file_permission_override if os.geteuid() == 0 else None
    result = subprocess.run(
        cli_command("hash", str(folder / "1.png"), str(folder / "2.png")),
        capture_output=True, text=True, preexec_fn=drop,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"{folder / '2.png'}: permission denied"
    assert result.stdout.startswith(f"{average_hash(folder / '1.png'):016x}  ")
    # The file exists and the same command reads it once its mode allows.
    (folder / "2.png").chmod(0o644)
    again = subprocess.run(cli_command("hash", str(folder / "2.png")), capture_output=True,
                           text=True, preexec_fn=drop)
    assert again.returncode == 0, again.stderr


# --- 2. crash safety and interruption ---------------------------------------------------------


def _wait_for(condition: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the database"
        time.sleep(0.01)


@contextlib.contextmanager
def _holding_writes(store: HashStore) -> Iterator[None]:
    """Block writers of image_hashes (readers go on) until the block ends."""
    with psycopg.connect(libpq_url(store.url), application_name="ahashdb-test-lock") as holder:
        holder.execute("LOCK TABLE image_hashes IN SHARE MODE")
        yield


def _waiting_on_a_lock(store: HashStore) -> bool:
    row = store.connection.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'ahashdb' AND wait_event_type = 'Lock'").fetchone()
    return bool(row and row[0])


def test_kill_9_at_random_moments_then_rerun_stores_every_file_once(
    store: HashStore, tmp_path: Path
) -> None:
    n, batch = 400, 9
    folder = photo_folder(tmp_path / "crash", n, "jpg", scale=4)
    cmd = cli_command("ingest", str(folder), "--company-id", "8", "--batch-size", str(batch),
                      "--workers", "1", "--quiet")
    rng = random.Random(20261125)
    counts = []
    for _ in range(CRASH_TRIALS):
        before = store.count(8)
        proc = subprocess.Popen(cmd, env=env_for(store.url), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        # Kill at a random moment after this run's first committed batch (or its end): the
        # database's state decides when, not this machine's speed.
        _wait_for(lambda b=before, p=proc: store.count(8) > b or p.poll() is not None)
        time.sleep(rng.uniform(0, 0.15))
        with contextlib.suppress(ProcessLookupError):  # it may have finished by now
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stored = store.count(8)
        counts.append(stored)
        # Batches go in walk order, so a crash leaves whole batches only.
        assert stored == n or stored % batch == 0, counts
    assert len(counts) == CRASH_TRIALS
    assert 0 < counts[0] < n  # the first kill really landed mid-ingest
    done = subprocess.run(cmd, env=env_for(store.url), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    counts_by_meta = per_meta_counts(store, 8)
    assert sorted(counts_by_meta) == list(range(1, n + 1))
    assert set(counts_by_meta.values()) == {1}
    sources = {r[0] for r in store.connection.execute(
        "SELECT source FROM image_hashes WHERE company_id = 8")}
    assert sources == {str(folder / f"{i}.jpg") for i in range(1, n + 1)}  # no orphans


def test_ctrl_c_finishes_the_current_batch_reports_and_exits_130(
    store: HashStore, tmp_path: Path
) -> None:
    n = 300
    folder = photo_folder(tmp_path / "sigint", n)
    cmd = cli_command("ingest", str(folder), "--company-id", "9", "--batch-size", "10",
                      "--workers", "2")
    with _holding_writes(store):
        proc = subprocess.Popen(cmd, env=env_for(store.url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        # Its first batch waits on the lock: Ctrl-C lands mid-ingest however fast it runs.
        _wait_for(lambda: _waiting_on_a_lock(store))
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        time.sleep(0.2)  # let the signal arrive before the lock goes
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    summary = re.search(r"(\d+) inputs before the interruption: (\d+) added", err)
    assert summary, err
    seen, added = int(summary[1]), int(summary[2])
    assert added == seen < n
    assert store.count(9) == added  # what it said it stored is what is stored
    assert "run the same command again" in err
    again = subprocess.run(cmd, env=env_for(store.url), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{n - added} added, {added} already present, 0 failed" in again.stderr
    assert sorted(per_meta_counts(store, 9)) == list(range(1, n + 1))


# --- 3. concurrency --------------------------------------------------------------------------


def test_four_overlapping_ingests_at_once_store_each_file_once(
    store: HashStore, tmp_path: Path
) -> None:
    n = 160
    folder = photo_folder(tmp_path / "overlap", n)
    procs = []
    for k in range(4):
        subset = [folder / f"{i}.png" for i in range(1, n + 1) if (i + k) % 4 != 0]
        random.Random(k).shuffle(subset)
        proc = subprocess.Popen(
            cli_command("ingest", "-", "--company-id", "4", "--batch-size", "7", "--quiet"),
            env=env_for(store.url), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        procs.append((proc, "".join(f"{p}\n" for p in subset)))
    added = 0
    for proc, stdin in procs:
        _, err = proc.communicate(stdin, timeout=300)
        assert proc.returncode == 0, err
        assert "deadlock" not in err
        added += int(re.search(r"(\d+) added", err)[1])
    assert added == n
    assert per_meta_counts(store, 4) == {i: 1 for i in range(1, n + 1)}


def test_concurrent_writers_of_the_same_rows_never_deadlock(store: HashStore) -> None:
    rows = [(h * 0x9E3779B97F4A7C15 % (1 << 64), 5, h % 997) for h in range(20_000)]
    results: list[int] = []
    failures: list[BaseException] = []

    def writer(seed: int) -> None:
        mine = rows[:]
        random.Random(seed).shuffle(mine)
        try:
            with HashStore(store.url) as s:
                results.append(s.insert_many(mine, batch_size=500))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sum(results) == len(rows) == store.count(5)


def test_searches_during_an_ingest_see_consistent_results(store: HashStore) -> None:
    base = [(h * 0x2545F4914F6CDD1D % (1 << 64), 6, h) for h in range(2_000)]
    store.insert_many(base)
    queries = [v for v, _, _ in base[:20]]
    before = [store.search(q, company_id=6, max_distance=12) for q in queries]
    stop = threading.Event()

    def ingest_into_the_same_company() -> None:
        # Rows one bit from every stored one, so each search's answer grows as batches land.
        with HashStore(store.url) as s:
            i = 10_000
            while not stop.is_set():
                s.insert_many(((v ^ 1, 6, i + m) for v, _, m in base), batch_size=500)
                i += 10_000

    t = threading.Thread(target=ingest_into_the_same_company)
    t.start()
    grew = 0
    try:
        deadline = time.monotonic() + 60
        while store.count(6) == len(base):  # wait for the first committed batch
            assert time.monotonic() < deadline, "the writer committed nothing in 60 s"
            time.sleep(0.01)
        for _ in range(5):
            for q, old in zip(queries, before, strict=True):
                now = store.search(q, company_id=6, max_distance=12)
                ids = {m.id for m in now}
                assert {m.id for m in old} <= ids  # nothing stored before went missing
                assert [(m.distance, m.id) for m in now] == sorted(
                    (m.distance, m.id) for m in now)
                assert all(m.meta_id >= 10_000 for m in now if m.id not in
                           {o.id for o in old})  # anything new is the writer's
                grew += len(now) > len(old)
    finally:
        stop.set()
        t.join()
    assert grew > 0  # the searches did run while rows were arriving


# --- 4. database faults ----------------------------------------------------------------------


def test_database_down_at_start_is_one_line_naming_host_and_port(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "down", 3)
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/ahashdb"
    for args in (("ingest", str(folder), "--company-id", "1"),
                 ("query", "--hash", "0123456789abcdef", "--company-id", "1"),
                 ("migrate",), ("stats",)):
        result = cli(url, *args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("error: cannot connect to PostgreSQL at 127.0.0.1:1")
        assert result.stderr.count("\n") == 1
        assert "s3cret-pw" not in result.output and "Traceback" not in result.output


def test_connection_killed_mid_ingest_loses_nothing_and_rerun_completes(
    store: HashStore, tmp_path: Path
) -> None:
    n, batch = 300, 10
    folder = photo_folder(tmp_path / "fault", n)
    cmd = cli_command("ingest", str(folder), "--company-id", "10", "--batch-size", str(batch))
    proc = subprocess.Popen(cmd, env=env_for(store.url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: store.count(10) > 0)
    with _holding_writes(store):  # the next batch waits: the kill lands mid-ingest
        _wait_for(lambda: _waiting_on_a_lock(store))
        killed = store.connection.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'ahashdb'"
            " AND pid <> pg_backend_pid()").fetchone()[0]
    assert killed >= 1
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: lost the connection to PostgreSQL at "), last
    assert "re-run" in last
    stored = store.count(10)
    assert 0 < stored < n and stored % batch == 0  # whole batches only
    again = subprocess.run(cmd, env=env_for(store.url), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert per_meta_counts(store, 10) == {i: 1 for i in range(1, n + 1)}


def test_statement_timeout_cancels_long_statements(store: HashStore) -> None:
    with HashStore(store.url, statement_timeout=0.2) as s:
        assert s.connection.execute("SHOW statement_timeout").fetchone()[0] == "200ms"
        t0 = time.perf_counter()
        with pytest.raises(psycopg.errors.QueryCanceled):
            s.connection.execute("SELECT pg_sleep(5)")
        assert time.perf_counter() - t0 < 2
    store.insert_many(((i * 0x9E3779B97F4A7C15) % (1 << 64), 11, i) for i in range(100_000))
    # A distance-40 search scans all 100,000 rows: far longer than a millisecond.
    result = cli(store.url, "query", "--hash", "0123456789abcdef", "--company-id", "11",
                 "--max-distance", "40", "--timeout", "0.001")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: canceling statement due to statement timeout")
    assert "--timeout" in result.stderr and result.stderr.count("\n") == 1
    ok = cli(store.url, "query", "--hash", "0123456789abcdef", "--company-id", "11",
             "--max-distance", "4", "--timeout", "30")
    assert ok.exit_code == 0, ok.output


def test_image_errors_are_ahashdb_errors_that_name_the_input(tmp_path: Path) -> None:
    for name, data in BAD.items():
        if not data:
            continue
        with pytest.raises(ImageError, match=re.escape("<") + r"\d+ bytes>: "):
            average_hash(data)
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ImageError, match=re.escape(str(p)) + ": "):
            average_hash(p)


def test_low_information_images_are_stored_with_a_warning_and_counted(
    store: HashStore, tmp_path: Path
) -> None:
    folder = tmp_path / "lowinfo"
    folder.mkdir()
    Image.new("RGB", (300, 200), "white").save(folder / "1.png")
    Image.new("L", (300, 200), 128).save(folder / "2.jpg")
    Image.new("RGB", (1, 1), (10, 200, 30)).save(folder / "3.png")
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(folder / "4.png")
    dot = Image.new("L", (400, 400), 255)
    dot.paste(0, (0, 0, 30, 30))  # a near-blank scan: one dark corner
    dot.save(folder / "5.png")
    gray = _base(2).convert("L")
    gray.save(folder / "6.png")  # an ordinary photo: no warning
    Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257).save(folder / "7.png")  # 16-bit
    r = cli(store.url, "ingest", str(folder), "--company-id", "12")
    assert r.exit_code == 0, r.output  # warnings are not failures
    warned = sorted(line.split(":")[0] for line in r.stderr.splitlines()
                    if "warning: low-information hash" in line)
    assert warned == [str(folder / f"{i}.{ext}") for i, ext in
                      ((1, "png"), (2, "jpg"), (3, "png"), (4, "png"), (5, "png"))]
    assert "7 added, 0 already present, 0 failed, 5 low-information" in r.stderr
    assert store.count(12) == 7
    assert store.stats(12)["low_information_hashes"] == 5
    assert dict(store.hashes_of(company_id=12, meta_id=7)[:1]).popitem()[1] == \
        dict(store.hashes_of(company_id=12, meta_id=6)[:1]).popitem()[1]


def _peak_kib(*args: str, env: dict[str, str] | None = None) -> tuple[list[str], int]:
    """Hash in a fresh process: (its output lines, its own peak memory in KiB)."""
    probe = (
        "import re, sys\n"
        "from ahashdb.hashes import average_hash\n"
        "from ahashdb.errors import ImageError\n"
        "try:\n    print(f'{average_hash(sys.argv[1]):016x}')\n"
        "except ImageError as e:\n    print(e)\n"
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})}).stdout.splitlines()
    return out[:-1], int(out[-1])


def test_the_pixel_limit_bounds_a_hashing_process_and_refuses_before_decoding(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (2000, 4000, 3), np.uint8)
                    ).resize((9000, 8000)).save(big, quality=70)  # 72 MP
    _, baseline = _peak_kib(str(tmp_path / "missing.jpg"))
    lines, peak = _peak_kib(str(big))
    assert "refused as a decompression bomb (72,000,000 pixels, more than the limit of" \
        " 64,000,000" in lines[0]
    assert peak - baseline < 30_000  # KiB: refused from the header, nothing decoded
    lines, peak = _peak_kib(str(big), env={"AHASHDB_MAX_PIXELS": "80000000"})
    assert lines[0] == f"{imagehash.average_hash(Image.open(big))}"
    # Measured: about 5 bytes a pixel while decoding and converting (72 MP: ~360 MB).
    assert (peak - baseline) * 1024 < 6 * 72_000_000
