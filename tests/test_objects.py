"""Images in buckets and at URLs, against a real S3-compatible server on 127.0.0.1 (moto's
server mode) and the real client library: hashes equal the files', faults are per object,
re-runs download nothing, no secret is stored or printed."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import boto3
import pytest

from ahashdb import HashStore, hash_image
from ahashdb.hashes import to_signed
from tests.imagegen import encode, photo
from tests.test_cli import run as cli

SECRET = "s3cr3t-AWS-key-value"


@dataclass
class S3:
    endpoint: str
    log: Path
    client: object

    def gets(self, bucket: str) -> int:
        """Object downloads so far (GETs of keys, not listings)."""
        return len(re.findall(rf'"GET /{bucket}/[^ ?]+ HTTP', self.log.read_text()))


def _moto(out: object = subprocess.DEVNULL, **env: str) -> tuple[subprocess.Popen, str]:
    """A moto S3 server on a free port of 127.0.0.1 (``env`` added to its environment), and
    its endpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], env={**os.environ, **env}, stdout=out, stderr=out)
    return proc, f"http://127.0.0.1:{port}"


def _until_up(proc: subprocess.Popen, call: Callable[[], object], log: Path | None = None
              ) -> None:
    """Retry ``call`` until the server answers it (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            call()
            return
        except Exception:  # noqa: BLE001 - not up yet
            assert time.monotonic() < deadline and proc.poll() is None, \
                log.read_text() if log else "moto did not start"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    log = tmp_path_factory.mktemp("moto") / "requests.log"
    with open(log, "w") as out:
        proc, endpoint = _moto(out)
    try:
        with pytest.MonkeyPatch.context() as env:
            for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET,
                         "AWS_DEFAULT_REGION": "us-east-1",
                         "AWS_ENDPOINT_URL": endpoint}.items():
                env.setenv(k, v)
            client = boto3.client("s3")
            _until_up(proc, client.list_buckets, log)
            yield S3(endpoint, log, client)
    finally:
        proc.terminate()
        proc.wait(10)


def _bucket(s3: S3, name: str, n: int, tmp_path: Path) -> Path:
    """A bucket with n photos under photos/ (and the same files on disk), a text file and a
    broken image."""
    s3.client.create_bucket(Bucket=name)
    local = tmp_path / name
    local.mkdir()
    for i in range(1, n + 1):
        data = encode(photo(i, (320, 240)), "JPEG", quality=90)
        (local / f"{i}.jpg").write_bytes(data)
        s3.client.put_object(Bucket=name, Key=f"photos/{i}.jpg", Body=data)
    s3.client.put_object(Bucket=name, Key="photos/readme.txt", Body=b"not listed")
    good = encode(photo(99, (320, 240)), "JPEG", quality=90)
    s3.client.put_object(Bucket=name, Key="photos/900.jpg", Body=good[: len(good) // 3])
    s3.client.put_object(Bucket=name, Key="photos/901.png", Body=b"<html>not an image</html>")
    return local


def test_a_bucket_prefix_ingests_like_the_same_files_and_reruns_download_nothing(
    s3: S3, store: HashStore, tmp_path: Path,
) -> None:
    local = _bucket(s3, "shop", 12, tmp_path)
    before = s3.gets("shop")
    first = cli(store.url, "ingest", "s3://shop/photos/", "--company-id", "5")
    assert first.exit_code == 1, first.output  # the two broken objects
    assert "s3://shop/photos/900.jpg: truncated or corrupt image" in first.stderr
    assert "s3://shop/photos/901.png: not an image Pillow can read" in first.stderr
    assert "14 inputs: 12 added, 0 already present, 2 failed" in first.stderr
    assert s3.gets("shop") - before == 14
    stored = {m: (h, s) for m, h, s in store.connection.execute(
        "SELECT meta_id, ahash_to_hex(hash), source FROM image_hashes WHERE company_id = 5")}
    assert stored == {i: (f"{hash_image(local / f'{i}.jpg'):016x}", f"s3://shop/photos/{i}.jpg")
                      for i in range(1, 13)}

    before = s3.gets("shop")
    again = cli(store.url, "ingest", "s3://shop/photos/", "--company-id", "5")
    assert "14 inputs: 0 added, 12 already present, 2 failed" in again.stderr
    assert s3.gets("shop") - before == 2  # only the broken ones, which were never stored
    assert store.count(5) == 12

    # A changed object (a new ETag) is downloaded and hashed again, and replaces its row.
    s3.client.put_object(Bucket="shop", Key="photos/3.jpg",
                         Body=encode(photo(42, (320, 240)), "JPEG", quality=90))
    changed = cli(store.url, "ingest", "s3://shop/photos/", "--company-id", "5")
    assert "1 added, 11 already present, 2 failed" in changed.stderr
    (row,) = store.connection.execute("SELECT ahash_to_hex(hash) FROM image_hashes"
                                      " WHERE company_id = 5 AND meta_id = 3").fetchall()
    assert row[0] == f"{hash_image(encode(photo(42, (320, 240)), 'JPEG', quality=90)):016x}"

    # query and hash take URLs too; an edited copy in the bucket finds its original
    copy = encode(photo(7, (320, 240)).resize((160, 120)), "JPEG", quality=60)
    s3.client.put_object(Bucket="shop", Key="copies/copy.jpg", Body=copy)
    found = cli(store.url, "query", "s3://shop/copies/copy.jpg", "--company-id", "5", "-f", "nl")
    assert found.exit_code == 0 and '"meta_id": 7' in found.stdout.splitlines()[0]
    hashed = cli(store.url, "hash", "s3://shop/photos/1.jpg")
    assert hashed.stdout.split()[0] == f"{hash_image(local / '1.jpg'):016x}"
    for r in (first, again, changed, found, hashed):
        assert SECRET not in r.output
    assert not store.connection.execute(
        "SELECT 1 FROM image_hashes WHERE source LIKE %s", (f"%{SECRET}%",)).fetchall()


def test_faults_are_per_object_and_an_unlistable_bucket_is_one_line(
    s3: S3, store: HashStore, tmp_path: Path,
) -> None:
    _bucket(s3, "faults", 2, tmp_path)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,meta_id\ns3://faults/photos/1.jpg,1\ns3://faults/photos/gone.jpg,2\n"
                        "s3://faults/photos/2.jpg,3\n")
    errors = tmp_path / "errors.csv"
    r = cli(store.url, "ingest", "--manifest", str(manifest), "--company-id", "6",
            "--errors", str(errors))
    assert r.exit_code == 1
    assert "s3://faults/photos/gone.jpg: not found" in r.stderr
    assert "s3://faults/photos/gone.jpg,not found" in errors.read_text()
    assert sorted(m for (m,) in store.connection.execute(
        "SELECT meta_id FROM image_hashes WHERE company_id = 6")) == [1, 3]
    missing = cli(store.url, "ingest", "s3://no-such-bucket/photos/", "--company-id", "6")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == ("error: s3://no-such-bucket/photos/: cannot list (The"
                                      " specified bucket does not exist)")


def test_a_signed_url_is_stored_without_its_signature(s3: S3, store: HashStore,
                                                       tmp_path: Path) -> None:
    _bucket(s3, "signed", 1, tmp_path)
    url = s3.client.generate_presigned_url(
        "get_object", Params={"Bucket": "signed", "Key": "photos/1.jpg"}, ExpiresIn=600)
    assert "Signature=" in url
    r = cli(store.url, "ingest", url, "--company-id", "8", "--meta-id", "1")
    assert r.exit_code == 0, r.output
    (source,) = store.connection.execute(
        "SELECT source FROM image_hashes WHERE company_id = 8").fetchone()
    assert source == f"{s3.endpoint}/signed/photos/1.jpg"
    assert "Signature" not in r.output and SECRET not in r.output


def test_a_folder_rerun_reads_nothing_it_stored_and_since_filters(store: HashStore,
                                                                   tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(1, 4):
        photo(i, (200, 150)).save(folder / f"{i}.png")
    assert cli(store.url, "ingest", str(folder), "--company-id", "9").exit_code == 0
    # Same size and mtime, other bytes: skipped unread (hashing would fail on them).
    target = folder / "2.png"
    st = target.stat()
    target.write_bytes(b"\0" * st.st_size)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = cli(store.url, "ingest", str(folder), "--company-id", "9")
    assert r.exit_code == 0 and "3 inputs: 0 added, 3 already present, 0 failed" in r.stderr
    full = cli(store.url, "ingest", str(folder), "--company-id", "9", "--full")
    assert full.exit_code == 1 and f"{target}: " in full.stderr
    later = cli(store.url, "ingest", str(folder), "--company-id", "9", "--since", "1d")
    assert "3 inputs" in later.stderr
    none = cli(store.url, "ingest", str(folder), "--company-id", "9", "--since", "2999-01-01")
    assert "0 inputs" in none.stderr
    bad = cli(store.url, "ingest", str(folder), "--company-id", "9", "--since", "soon")
    assert bad.exit_code == 1 and "--since 'soon'" in bad.stderr


def test_an_input_listed_twice_in_one_run_is_stored_once(store: HashStore,
                                                       tmp_path: Path) -> None:
    """The same file named several times on stdin (and a folder holding it): one row, its
    source recorded once, the repeats counted as already present. (Recording the batch's
    sources failed on the repeats, ending the run.)"""
    folder = tmp_path / "twice"
    folder.mkdir()
    for i in range(1, 3):
        photo(i, (200, 150)).save(folder / f"{i}.png")
    listed = "".join(f"{folder / '1.png'}\n" for _ in range(3)) + f"{folder / '2.png'}\n"
    r = cli(store.url, "ingest", "-", str(folder), "--company-id", "12", input=listed)
    assert r.exit_code == 0, r.output
    assert "6 inputs: 2 added, 4 already present, 0 failed" in r.stderr
    assert store.count(12) == 2
    assert store.connection.execute(
        "SELECT count(*) FROM ahash_sources WHERE company_id = 12").fetchone()[0] == 2


def test_web_faults_are_named_per_url_transient_ones_retried_and_the_rest_stored(
        store: HashStore, tmp_path: Path) -> None:
    """Against a real HTTP server that fails on purpose (tests/webfaults.py): not found,
    access denied, throttled, a connection reset, a truncated body and a slow object each
    get one `URL: reason` line and a row in --errors; a server error that clears up is
    retried and stored; the good objects are stored; the exit is 1."""
    from tests.webfaults import FaultServer, jpeg

    with FaultServer() as web:
        cases = {
            "/ok/1.jpg": None,
            "/flaky/2.jpg": None,
            "/missing.jpg": "not found",
            "/denied.jpg": "access denied (HTTP 403 Forbidden)",
            "/throttled.jpg": "throttled (HTTP 429 Too Many Requests)",
            "/reset.jpg": "connection reset",
            "/truncated.jpg": "truncated body",
            "/slow.jpg": "timed out",
        }
        manifest = tmp_path / "urls.csv"
        manifest.write_text("path,meta_id\n" + "".join(
            f"{web.url(p)}?X-Amz-Signature=s3cr3tsig,{i}\n" for i, p in enumerate(cases, 1)))
        errors = tmp_path / "errors.csv"
        t0 = time.monotonic()
        r = cli(store.url, "ingest", "--manifest", str(manifest), "--company-id", "12",
                "--errors", str(errors), "--timeout", "1")
        elapsed = time.monotonic() - t0
        hits = dict(web.hits)
    assert r.exit_code == 1, r.output
    assert elapsed < 15  # the slow object gave up at --timeout, it did not hold the run
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    for path, reason in cases.items():
        if reason is None:
            continue
        expected = f"{web.url(path)}: {reason}"
        assert any(line.startswith(expected) for line in lines), (expected, lines)
        assert f"{web.url(path)},{reason}" in errors.read_text()
    assert "s3cr3tsig" not in r.output + errors.read_text()
    stored = dict(store.connection.execute(
        "SELECT meta_id, hash FROM image_hashes WHERE company_id = 12").fetchall())
    assert sorted(stored) == [1, 2]
    assert stored[2] == to_signed(hash_image(BytesIO(jpeg(2))))
    # transient failures were tried again (the 503s until they cleared; 429s and resets up
    # to the limit), permanent ones once
    assert hits["/flaky/2.jpg"] == 3 and hits["/throttled.jpg"] >= 3
    assert hits["/missing.jpg"] == 1 and hits["/denied.jpg"] == 1


def test_object_faults_through_the_store_client_are_per_object(
        store: HashStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault server as an S3-compatible endpoint (its paths are the objects of the
    bucket `faults`), objects named one by one as arguments: obstore retries the server
    error that clears up; a denied, missing, moved (another region), reset, truncated or
    slow object is one
    `URL: reason` line and a row in --errors (the first request of an object named alone
    is a HEAD, and its failure is that object's too); the rest are stored; exit 1."""
    from tests.webfaults import FaultServer

    with FaultServer() as web:
        endpoint = web.url("")
        cases = {
            "ok/1.jpg": None,
            "flaky/2.jpg": None,
            "denied.jpg": "access denied (HTTP 403)",
            "missing.jpg": "not found",
            "moved.jpg": "the bucket is in another region: set AWS_REGION",
            "reset.jpg": "connection reset",
            "truncated.jpg": "truncated body",
            "slow.jpg": "timed out",
        }
        errors = tmp_path / "errors.csv"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        r = cli(store.url, "ingest", *(f"s3://faults/{k}" for k in cases),
                "--company-id", "13", "--endpoint-url", endpoint, "--timeout", "1",
                "--errors", str(errors))
        hits = dict(web.hits)
    assert r.exit_code == 1, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    for key, reason in cases.items():
        if reason is None:
            assert not any(f"s3://faults/{key}" in line for line in lines), r.stderr
        else:
            assert any(line.startswith(f"s3://faults/{key}: {reason}") for line in lines), (
                key, r.stderr)
            assert f"s3://faults/{key},{reason}" in errors.read_text()
    assert "8 inputs: 2 added, 0 already present, 6 failed" in r.stderr
    assert sorted(m for (m,) in store.connection.execute(
        "SELECT meta_id FROM image_hashes WHERE company_id = 13")) == [1, 2]
    assert hits["/flaky/2.jpg"] >= 3  # two 503s, retried, then the object
    assert SECRET not in r.output


def test_eval_reads_pairs_of_urls_and_names_the_ones_it_cannot_fetch(
        s3: S3, tmp_path: Path) -> None:
    """`ahashdb eval` with s3:// objects, web URLs and local paths in one CSV: each object
    is downloaded once, the scores equal those of the same files on disk, and an object that
    cannot be fetched is one line naming it, its pairs left out."""
    from tests.webfaults import FaultServer, jpeg

    s3.client.create_bucket(Bucket="pairs")
    local = tmp_path / "local"
    local.mkdir()
    for i in (1, 2):
        (local / f"{i}.jpg").write_bytes(jpeg(i))
        s3.client.put_object(Bucket="pairs", Key=f"{i}.jpg", Body=jpeg(i))
    with FaultServer() as web:
        rows = [("s3://pairs/1.jpg", web.url("/ok/1.jpg"), "same"),
                ("s3://pairs/1.jpg", "local/2.jpg", "different"),
                (web.url("/ok/2.jpg"), "s3://pairs/2.jpg", "same"),
                ("s3://pairs/gone.jpg", "local/1.jpg", "same")]
        (tmp_path / "pairs.csv").write_text("".join(",".join(r) + "\n" for r in rows))
        (tmp_path / "same.csv").write_text(
            "local/1.jpg,local/1.jpg,same\nlocal/1.jpg,local/2.jpg,different\n"
            "local/2.jpg,local/2.jpg,same\n")
        got = cli("unused", "eval", str(tmp_path / "pairs.csv"), "-a", "ahash", "-f", "csv")
        hits = dict(web.hits)
    want = cli("unused", "eval", str(tmp_path / "same.csv"), "-a", "ahash", "-f", "csv")
    assert got.exit_code == 1 and want.exit_code == 0, got.output
    assert got.stdout == want.stdout
    assert got.stderr.strip().splitlines() == ["s3://pairs/gone.jpg: not found"]
    assert hits == {"/ok/1.jpg": 1, "/ok/2.jpg": 1}
    log = s3.log.read_text()
    assert [len(re.findall(rf'"GET /pairs/{k} HTTP', log)) for k in ("1.jpg", "2.jpg")] \
        == [1, 1]  # each object downloaded once, for every pair and algorithm


def test_a_bucket_listing_is_complete_and_counted_before_its_first_object(
        s3: S3, tmp_path: Path) -> None:
    """What a progress bar's total needs: the listing's size, known before any download."""
    from ahashdb.ingest import items_from_paths

    _bucket(s3, "counted", 5, tmp_path)
    listed: list[int] = []
    items = items_from_paths(["s3://counted/photos/", "s3://counted/photos/2.jpg"],
                             on_listed=listed.append)
    first = next(items)
    assert listed == [7] and first.path == "s3://counted/photos/1.jpg"  # 5 + 900 + 901
    assert s3.gets("counted") == 0
    rest = list(items)
    assert listed == [7, 1] and len(rest) == 7


def test_access_denied_is_per_object_and_a_wrong_key_cannot_list(
        tmp_path: Path, store: HashStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a server that checks signatures and IAM policies (moto with authentication
    on): an object the policy denies is one `URL: access denied` line while the rest are
    stored; a key the server does not know stops the run before anything, in one line."""
    import json

    proc, endpoint = _moto(INITIAL_NO_AUTH_ACTION_COUNT="3")
    try:
        setup = {"endpoint_url": endpoint, "region_name": "us-east-1",
                 "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **setup)
        _until_up(proc, lambda: iam.create_user(UserName="reader"))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:GetObject",
                 "Resource": "arn:aws:s3:::locked/photos/2.jpg"}]}))
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=key["AccessKeyId"],
                              aws_secret_access_key=key["SecretAccessKey"])
        client.create_bucket(Bucket="locked")
        for i in (1, 2, 3):
            client.put_object(Bucket="locked", Key=f"photos/{i}.jpg",
                              Body=encode(photo(i, (320, 240)), "JPEG", quality=90))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        r = cli(store.url, "ingest", "s3://locked/photos/", "--company-id", "31")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY")
        wrong = cli(store.url, "ingest", "s3://locked/photos/", "--company-id", "32")
        # The same keys from a named profile in a shared credentials file, none in the
        # environment: botocore's chain finds them and obstore signs with them.
        profiles = tmp_path / "credentials"
        profiles.write_text(f"[reader]\naws_access_key_id = {key['AccessKeyId']}\n"
                            f"aws_secret_access_key = {key['SecretAccessKey']}\n")
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.setenv("AWS_PROFILE", "reader")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(profiles))
        profiled = cli(store.url, "ingest", "s3://locked/photos/", "--company-id", "33")
    finally:
        proc.terminate()
        proc.wait(10)
    assert r.exit_code == 1
    assert "s3://locked/photos/2.jpg: access denied: Access Denied" in r.stderr
    assert "3 inputs: 2 added, 0 already present, 1 failed" in r.stderr
    assert sorted(m for (m,) in store.connection.execute(
        "SELECT meta_id FROM image_hashes WHERE company_id = 31")) == [1, 3]
    assert wrong.exit_code == 1 and store.count(32) == 0
    assert wrong.stderr.strip() == (
        "error: s3://locked/photos/: cannot list (access denied: The AWS Access Key Id you"
        " provided does not exist in our records.)")
    assert SECRET not in wrong.output and key["SecretAccessKey"] not in r.output
    assert profiled.exit_code == 1 and "2 added, 0 already present, 1 failed" in profiled.stderr
    assert store.count(33) == 2
