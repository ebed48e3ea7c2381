"""Ingest speed against a single-process imagehash loop, and memory for many listed paths.

    python benchmarks/ingest.py                   # 2,000 JPEGs of 1-4 MP, 200,000 listed paths
    python benchmarks/ingest.py --count 10000 --listed 1000000

1. Writes --count photo-like JPEGs of 1-4 megapixels (made here, no downloads).
2. Times, in --rounds interleaved rounds: a single-process loop of
   imagehash.average_hash(Image.open(p)) over all of them (the baseline), `ahashdb ingest
   DIR` (all cores, a fresh process, start-up included) into a new company of a scratch
   database, two independent processes running the imagehash loop on half the files
   each (the most any parallel hashing can gain on this machine), and `ahashdb ingest` of
   an empty folder (its start-up and exit alone); prints the medians of images/s and of
   the rounds' ratios, and how much of the ingest's time is start-up.
3. Feeds --listed paths on stdin to `ahashdb ingest -` (one in 100 exists, the rest are
   reported missing) and samples the RSS of the ingest process tree: memory must stay flat
   however many paths are listed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import imagehash
import numpy as np
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from _common import drop_database, scratch_database  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from ahashdb.samples import photo  # noqa: E402

SIZES = [(1280, 960), (1600, 1200), (2048, 1536), (2304, 1728)]  # 1.2 - 4.0 MP


def make_images(folder: Path, count: int) -> None:
    """Photo-like JPEGs: upscaled smooth scenes with per-image crop, tint and grain."""
    rng = np.random.default_rng(0)
    bases = [photo(i, (480, 360)) for i in range(40)]
    for i in range(count):
        w, h = SIZES[i % len(SIZES)]
        base = bases[i % len(bases)]
        x0, y0 = rng.integers(0, 60), rng.integers(0, 45)
        img = base.crop((x0, y0, x0 + 420, y0 + 315)).resize((w, h), Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.int16)
        arr = arr + rng.integers(-12, 13, size=3) + rng.integers(-6, 7, size=(h, w, 1))
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(folder / f"{i + 1}.jpg",
                                                                 quality=88)


def _hash_files(files: list[Path]) -> None:
    for f in files:
        imagehash.average_hash(Image.open(f))


def two_process_seconds(files: list[Path]) -> float:
    """Seconds for two independent processes, each running the imagehash loop on half the
    files: the most that parallel hashing can gain on this machine (no ahashdb involved)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    by_size = sorted(files, key=lambda f: f.stat().st_size)  # halves of equal work
    t = time.perf_counter()
    procs = [ctx.Process(target=_hash_files, args=(by_size[i::2],)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.perf_counter() - t


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and its children, in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_sampled(cmd: list[str], env: dict, stdin_data: bytes | None) -> tuple[float, int, int]:
    """(seconds, exit code, peak tree RSS) of a command, RSS sampled every 50 ms."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak = max(peak, tree_rss(ps))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if stdin_data is not None:
        proc.stdin.write(stdin_data)  # type: ignore[union-attr]
    proc.stdin.close()  # type: ignore[union-attr]
    code = proc.wait()
    done.set()
    sampler.join()
    return time.perf_counter() - t, code, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000, help="JPEGs to make and ingest")
    ap.add_argument("--listed", type=int, default=200_000, help="paths for the memory run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--dir", type=Path, default=None, help="reuse/keep images here")
    args = ap.parse_args()

    folder = args.dir or Path(tempfile.mkdtemp(prefix="ahashdb-ingest-"))
    folder.mkdir(parents=True, exist_ok=True)
    existing = len(list(folder.glob("*.jpg")))
    if existing < args.count:
        t = time.perf_counter()
        make_images(folder, args.count)
        print(f"made {args.count} JPEGs (1.2-4 MP) in {time.perf_counter() - t:.0f} s: {folder}")
    files = [folder / f"{i + 1}.jpg" for i in range(args.count)]
    if existing > args.count:  # a reused folder holding more: ingest exactly these files
        chosen = Path(tempfile.mkdtemp(prefix="ahashdb-ingest-", dir=folder.parent))
        for f in files:
            os.link(f, chosen / f.name)
        files = [chosen / f.name for f in files]
        folder = chosen
    mb = sum(f.stat().st_size for f in files) / 2**20
    print(f"{len(files)} files, {mb:.0f} MB, {os.cpu_count()} cores")

    for f in files:  # every run below reads from the page cache, not the disk
        f.read_bytes()

    def baseline() -> float:
        t = time.perf_counter()
        for f in files:
            imagehash.average_hash(Image.open(f))
        return time.perf_counter() - t

    url = scratch_database(args.database_url, "ahashdb_bench_ingest")
    with HashStore(url, auto_migrate=False) as store:
        store.migrate()
    env = {**os.environ, "AHASHDB_DATABASE_URL": url}

    def ingest_cmd(target: str, company: int) -> list[str]:
        return [sys.executable, "-m", "ahashdb", "ingest", target, "--company-id",
                str(company), "--quiet"]

    empty = Path(tempfile.mkdtemp(prefix="ahashdb-ingest-empty-"))
    loops, twos, ingests, ratios, peak, idles = [], [], [], [], 0, []
    for r in range(args.rounds):  # interleaved: loop, ingest (a fresh company), two bare
        # processes, ingest of nothing
        loops.append(baseline())
        ing_s, code, peak_r = run_sampled(ingest_cmd(str(folder), 100 + r), env, None)
        if code != 0:
            print(f"ingest exited {code}")
            return 1
        ingests.append(ing_s)
        twos.append(two_process_seconds(files))
        # The same command with nothing to hash: interpreter, imports, connection, exit.
        t = time.perf_counter()
        subprocess.run(ingest_cmd(str(empty), 200 + r), env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        idles.append(time.perf_counter() - t)
        ratios.append(loops[-1] / ing_s)
        peak = max(peak, peak_r)
    med = statistics.median
    base_s, two_s, ing_s = med(loops), med(twos), med(ingests)
    print(f"medians of {args.rounds} interleaved rounds")
    print(f"imagehash loop, one process : {len(files) / base_s:8.1f} images/s")
    print(f"the same loop, 2 processes  : {len(files) / two_s:8.1f} images/s"
          f"  ({base_s / two_s:.2f}x: the ceiling for parallel hashing on this machine)")
    print(f"ahashdb ingest, all cores   : {len(files) / ing_s:8.1f} images/s"
          f"  ({med(ratios):.2f}x the loop, rounds {', '.join(f'{x:.2f}' for x in ratios)};"
          f" peak RSS {peak / 2**20:.0f} MB)")
    idle_s = med(idles)
    print(f"of which start-up and exit      : {idle_s:8.2f} s (the same command on an empty"
          f" folder); the rest {ing_s - idle_s:.2f} s against the 2 processes' {two_s:.2f} s")

    lines = "".join(
        f"{files[i // 100 % len(files)] if i % 100 == 0 else folder / 'missing' / str(i)}\n"
        for i in range(args.listed)
    ).encode()
    list_s, code, peak = run_sampled(ingest_cmd("-", 2), env, lines)
    print(f"{args.listed:,} listed paths on stdin (1 in 100 exists): {list_s:.0f} s,"
          f" peak RSS of the ingest process tree {peak / 2**20:.0f} MB (exit {code})")
    drop_database(url)
    shutil.rmtree(empty)
    if existing > args.count:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
