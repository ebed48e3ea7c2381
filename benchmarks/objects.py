"""Ingest from a bucket against the same files on local disk, in one run.

    python benchmarks/objects.py                 # 300 photo-like 1.2 MP JPEGs, moto
    python benchmarks/objects.py --count 1000
    python benchmarks/objects.py --server s3rver  # node's s3rver (npx): less server CPU
    python benchmarks/objects.py --workers 1      # one hashing process each, a core to spare
    python benchmarks/objects.py --endpoint-url http://minio.internal:9000 --bucket scratch

Starts a real S3-compatible server on 127.0.0.1 (moto's server mode, from the dev extra; or
s3rver, a Node.js server fetched by npx, which spends about half moto's CPU a request),
puts N JPEGs in a bucket and the same files in a folder, then times `ahashdb ingest` (the
command, one process tree each, all cores hashing) of the folder into one company and of
s3://bucket/prefix/ into another, on a scratch database, over --rounds interleaved rounds;
then a re-run of each (nothing new: a listing, one query, no downloads). Prints the median
images/s, the CPU the ingest process tree spent, the median of the rounds' bucket / local
disk ratios, and the CPU the S3 server itself spent on this machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
from _common import drop_database, scratch_database  # noqa: E402

from ahashdb import HashStore  # noqa: E402
from tests.imagegen import encode, photo  # noqa: E402


def ingest(url: str, target: str, company: int, env: dict[str, str],
           workers: int | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    extra = ["--workers", str(workers)] if workers else []
    r = subprocess.run([sys.executable, "-m", "ahashdb", "ingest", target, "--company-id",
                        str(company), "--quiet", *extra],
                       env={**env, "AHASHDB_DATABASE_URL": url}, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return time.perf_counter() - t0, r.stderr.strip().splitlines()[-1]


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (an ingest and its hashing workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None,
                    help="hashing processes for both ingests (default: all cores); 1 leaves"
                    " a core to the S3 server, as a store on other machines would")
    ap.add_argument("--size", default="1280x960", help="the JPEGs' WIDTHxHEIGHT")
    ap.add_argument("--server", choices=["moto", "s3rver"], default="moto",
                    help="the S3-compatible server to start on 127.0.0.1")
    ap.add_argument("--endpoint-url", default=None,
                    help="use this S3-compatible store instead of starting one (credentials"
                    " from the environment; objects go under a prefix of their own in"
                    " --bucket and are deleted at the end)")
    ap.add_argument("--bucket", default="bench", help="with --endpoint-url")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    scratch = tempfile.TemporaryDirectory()
    server = None
    bucket_name, prefix = args.bucket, "photos/"
    if args.endpoint_url:
        env = {**os.environ, "AWS_ENDPOINT_URL": args.endpoint_url}
        prefix = f"ahashdb-bench-{os.getpid()}/photos/"
        where = args.endpoint_url
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if args.server == "moto":
            cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
            key = "bench"
        else:  # s3rver accepts only its own key pair
            cmd = ["npx", "--yes", "s3rver@3.7.1", "-d", scratch.name, "-a", "127.0.0.1",
                   "-p", str(port), "--configure-bucket", bucket_name]
            key = "S3RVER"
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": key,
               "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
        where = f"{args.server} server on 127.0.0.1"
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    target = f"s3://{bucket_name}/{prefix}"
    url = scratch_database(args.database_url, "ahashdb_bench_objects")
    try:
        import boto3

        client = boto3.client("s3")
        deadline = time.monotonic() + 120
        while True:
            try:
                client.list_buckets()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or (server and server.poll() is not None):
                    raise SystemExit(f"no S3 store answers at {env['AWS_ENDPOINT_URL']}"
                                     ) from None
                time.sleep(0.2)
        if bucket_name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=bucket_name)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "photos"
            folder.mkdir()
            for i in range(1, args.count + 1):
                data = encode(photo(i, (width, height)), "JPEG", quality=90)
                (folder / f"{i}.jpg").write_bytes(data)
                client.put_object(Bucket=bucket_name, Key=f"{prefix}{i}.jpg", Body=data)
            HashStore(url).migrate()
            mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
            print(f"{args.count} JPEGs of {args.size} ({mb:.0f} MB) in a folder and in"
                  f" {target} ({where})")
            tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(True)] \
                if server else []

            def server_cpu() -> float:
                return sum(sum(p.cpu_times()[:2]) for p in tree)

            disk, bucket, ratios, served, cpu = [], [], [], [], {"disk": [], "bucket": []}
            for r in range(args.rounds):  # interleaved, each into a company of its own
                c0 = _children_cpu()
                disk_s, disk_line = ingest(url, str(folder), 10 + r, env, args.workers)
                c1, s0 = _children_cpu(), server_cpu()
                bucket_s, bucket_line = ingest(url, target, 20 + r, env, args.workers)
                cpu["disk"].append(c1 - c0)
                cpu["bucket"].append(_children_cpu() - c1)
                served.append(server_cpu() - s0)
                disk.append(disk_s)
                bucket.append(bucket_s)
                ratios.append(disk_s / bucket_s)
            med = statistics.median
            print(f"local disk: {args.count / med(disk):6.1f} images/s, ingest CPU"
                  f" {med(cpu['disk']):.2f} s  (last: {disk_line})")
            print(f"bucket:     {args.count / med(bucket):6.1f} images/s, ingest CPU"
                  f" {med(cpu['bucket']):.2f} s  (last: {bucket_line})")
            spent = (f"the S3 server itself used {med(served):.2f} s of CPU on this machine a"
                     f" run ({med(served) / med(bucket):.0%} of one core), which a real store"
                     " spends elsewhere") if server else "the store runs elsewhere"
            print(f"bucket / local disk: {med(ratios):.2f}x (median of {args.rounds} interleaved"
                  f" rounds: {', '.join(f'{x:.2f}' for x in ratios)}); {spent}")
            again_disk, _ = ingest(url, str(folder), 10, env)
            again_bucket, line = ingest(url, target, 20, env)
            print(f"re-run, nothing new: folder {again_disk:.2f} s ({again_disk / med(disk):.0%}"
                  f" of the first), bucket {again_bucket:.2f} s"
                  f" ({again_bucket / med(bucket):.0%}; {line})")
    finally:
        drop_database(url)
        if server is not None:
            for proc in psutil.Process(server.pid).children(True):
                proc.terminate()
            server.terminate()
            server.wait(10)
        elif "client" in locals():  # a store elsewhere: take the objects away again
            for i in range(1, args.count + 1):
                client.delete_object(Bucket=bucket_name, Key=f"{prefix}{i}.jpg")
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
