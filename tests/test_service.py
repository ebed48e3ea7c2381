"""The HTTP service, tested as a client sees it: a real `ahashdb serve` process on
127.0.0.1, connected as an application role under strict row-level security, with two
companies' keys."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from ahashdb import HashStore, hash_image
from ahashdb.config import libpq_url
from tests.imagegen import encode, photo


@dataclass
class Service:
    base: str
    key1: str
    key2: str
    media: Path
    proc: subprocess.Popen
    log: Path

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    owner = HashStore(database_url)
    conn = owner.connection
    role = f"ahashdb_serve_{os.getpid()}"
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    owner.create_application_role(role, "pw")
    owner.enable_strict_row_level_security()
    key1, key2 = owner.create_key(1, "web"), owner.create_key(2, "other")
    media = tmp_path_factory.mktemp("media")
    port = _free_port()
    app_url = make_url(database_url).set(username=role, password="pw").render_as_string(False)
    log = media.parent / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ahashdb", "serve", "--port", str(port), "--media-root",
             str(media), "--max-upload-mb", "50"],
            env={**os.environ, "AHASHDB_DATABASE_URL": app_url}, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield Service(base, key1, key2, media, proc, log)
    proc.terminate()
    proc.wait(30)
    owner.disable_row_level_security()
    conn.execute("DELETE FROM ahash_api_keys")
    conn.execute("DELETE FROM ahash_decisions")
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    owner.close()


@pytest.fixture
def clean(store: HashStore, service: Service) -> Service:
    store.connection.execute("DELETE FROM ahash_decisions")
    return service


def _png(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(photo(seed, size), "PNG")


def _upload(client: httpx.Client, data: bytes, name: str = "a.png", **params: object):  # noqa: ANN202
    return client.post("/v1/images", files={"file": (name, data, "image/png")},
                       params={k: v for k, v in params.items() if v is not None})


def test_upload_stores_a_new_image_and_an_edited_copy_matches_it(clean: Service,
                                                                  store: HashStore) -> None:
    with clean.client(clean.key1) as c:
        original = _upload(c, _png(1), meta_id=101, source="shop/101.png")
        assert original.status_code == 200, original.text
        body = original.json()
        assert body["hash"] == f"{hash_image(_png(1)):016x}"
        assert body["matches"] == [] and body["stored"]["meta_id"] == 101
        copy = encode(photo(1, (320, 240)).resize((160, 120)), "JPEG", quality=60)
        again = _upload(c, copy, "copy.jpg", meta_id=102)
        assert again.status_code == 200
        assert again.json()["stored"] is None
        assert [m["meta_id"] for m in again.json()["matches"]] == [101]
        never = _upload(c, _png(2), store="never")
        assert never.json()["stored"] is None and never.json()["matches"] == []
    assert store.count(1) == 1


def test_eight_simultaneous_uploads_of_one_new_image_store_one_row(clean: Service,
                                                                   store: HashStore) -> None:
    data, results = _png(3), []
    barrier = threading.Barrier(8)

    def upload(k: int) -> None:
        with clean.client(clean.key1) as c:
            barrier.wait()
            results.append(_upload(c, data, meta_id=200 + k).json())

    threads = [threading.Thread(target=upload, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [r["stored"] for r in results if r["stored"]]
    assert len(stored) == 1 and store.count(1) == 1
    assert all(stored[0]["id"] in [m["id"] for m in r["matches"]]
               for r in results if not r["stored"])


def test_a_key_reaches_its_own_company_only(clean: Service, store: HashStore) -> None:
    with clean.client(clean.key1) as one, clean.client(clean.key2) as two:
        row = _upload(one, _png(4), meta_id=7).json()["stored"]
        h = row["hash"]
        assert [m["id"] for m in one.get("/v1/search", params={"hash": h}).json()["matches"]] \
            == [row["id"]]
        assert two.get("/v1/search", params={"hash": h, "max_distance": 64}).json() \
            == {"matches": []}
        assert two.get("/v1/nearest", params={"hash": h, "k": 5}).json() == {"matches": []}
        assert two.get("/v1/search", params={"meta_id": 7}).status_code == 404
        assert two.delete(f"/v1/images/{row['id']}").status_code == 404
        assert two.delete("/v1/images", params={"meta_id": 7}).json() == {"deleted": 0}
        assert two.get(f"/v1/images/{row['id']}/thumbnail").status_code == 404
        mine = _upload(two, _png(4), meta_id=7).json()  # the same picture, another company
        assert mine["stored"] is not None and mine["matches"] == []
        assert one.delete(f"/v1/images/{row['id']}").json() == {"deleted": 1}
    assert (store.count(1), store.count(2)) == (0, 1)


def test_missing_wrong_and_revoked_keys_get_401(clean: Service, store: HashStore) -> None:
    with clean.client(None) as anon:
        r = anon.get("/v1/search", params={"hash": "ffd7918181c9ffff"})
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 401 and "Traceback" not in r.text
    with clean.client("ahk_not-a-key") as wrong:
        assert wrong.get("/v1/search", params={"hash": "ffd7918181c9ffff"}).status_code == 401
    key = store.create_key(1, "temporary")
    with clean.client(key) as c:
        assert c.get("/v1/search", params={"hash": "ffd7918181c9ffff"}).status_code == 200
        (made,) = [k for k in store.keys(1) if k["name"] == "temporary"]
        store.revoke_key(made["id"])
        assert c.get("/v1/search", params={"hash": "ffd7918181c9ffff"}).status_code == 401


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(clean: Service) -> None:
    server = psutil.Process(clean.proc.pid)
    with clean.client(clean.key1) as c:
        c.get("/healthz")
        fds_before = server.num_fds()
        big = c.post("/v1/images", params={"meta_id": 1},
                     files={"file": ("big.png", b"\0" * (60 * 2**20), "image/png")})
        assert big.status_code == 413 and "limit" in big.json()["detail"]
        png = _png(5)
        cases = {
            "not an image": b"hello, not an image",
            "truncated": png[: len(png) // 2],
            "svg": b"<svg xmlns='http://www.w3.org/2000/svg' width='9' height='9'/>",
        }
        for _ in range(10):  # a burst
            for name, data in cases.items():
                r = _upload(c, data, name + ".png", meta_id=1)
                assert r.status_code == 400, (name, r.text)
                assert r.json()["detail"].startswith(f"{name}.png: ")
            assert c.get("/v1/search", params={"hash": "xyz"}).status_code == 400
            r = c.get("/v1/search", params={"hash": "ffd7918181c9ffff", "algorithm": "md5"})
            assert r.status_code == 400 and "md5" in r.json()["detail"]
            assert _upload(c, _png(6)).status_code == 400  # meta_id is needed to store
        assert c.get("/healthz").json() == {"status": "ok"}
        assert _upload(c, _png(6), meta_id=9).status_code == 200
        assert server.num_fds() <= fds_before + 4  # no leaked files or connections
    log = clean.log.read_text()
    assert "POST /v1/images 413" in log and "GET /v1/search 400" in log
    assert clean.key1 not in log and "Traceback" not in log


def test_readyz_reports_the_schema_and_strict_row_level_security(clean: Service) -> None:
    from ahashdb.connection import SCHEMA_REVISION

    r = httpx.get(f"{clean.base}/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "schema_revision": SCHEMA_REVISION,
                        "row_level_security": "strict"}
    assert httpx.get(f"{clean.base}/docs").status_code == 200
    assert "/v1/images" in httpx.get(f"{clean.base}/openapi.json").json()["paths"]


def test_a_url_to_a_private_address_is_refused(clean: Service) -> None:
    with clean.client(clean.key1) as c:
        r = c.post("/v1/images", json={"url": f"{clean.base}/healthz"}, params={"meta_id": 1})
        assert r.status_code == 400 and "loopback" in r.json()["detail"]
        r = c.post("/v1/images", json={"url": "file:///etc/passwd"}, params={"meta_id": 1})
        assert r.status_code == 400


def test_review_page_shows_groups_with_thumbnails(clean: Service, store: HashStore) -> None:
    picture = photo(8, (320, 240))
    picture.save(clean.media / "a.png")
    picture.resize((200, 150)).save(clean.media / "b.png")
    with clean.client(clean.key1) as c:
        for k, name in enumerate(("a.png", "b.png")):
            data = (clean.media / name).read_bytes()
            assert _upload(c, data, name, meta_id=300 + k, source=str(clean.media / name),
                           store="always").status_code == 200
        gone = _upload(c, encode(picture, "JPEG", quality=70), "gone.jpg", meta_id=302,
                       source=str(clean.media / "gone.jpg"), store="always").json()["stored"]
        page = c.get("/review")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        ids = [r[0] for r in store.connection.execute(
            "SELECT id FROM image_hashes WHERE company_id = 1 ORDER BY id")]
        for i in ids:
            assert f"/v1/images/{i}/thumbnail" in page.text
        assert "Group 1 · 3 images" in page.text
        thumb = c.get(f"/v1/images/{ids[0]}/thumbnail")
        assert thumb.headers["content-type"] == "image/png"
        assert thumb.headers["x-thumbnail"] == "image"
        from PIL import Image

        assert max(Image.open(io.BytesIO(thumb.content)).size) == 160
        placeholder = c.get(f"/v1/images/{gone['id']}/thumbnail")
        assert placeholder.status_code == 200 and placeholder.headers["x-thumbnail"] == \
            "placeholder"
    with clean.client(None) as anon:
        signin = anon.get("/review")
        assert signin.status_code == 200 and "Sign in" in signin.text


def test_sigterm_lets_a_request_in_flight_finish(database_url: str) -> None:
    owner = HashStore(database_url)
    key = owner.create_key(3, "sigterm")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ahashdb", "serve", "--port", str(port)],
                            env={**os.environ, "AHASHDB_DATABASE_URL": database_url},
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        # An upload is in flight when SIGTERM arrives (its insert waits on a lock we hold);
        # it is answered, then the server ends.
        result: list[httpx.Response] = []

        def upload() -> None:
            with httpx.Client(base_url=base, timeout=60,
                              headers={"Authorization": f"Bearer {key}"}) as c:
                result.append(_upload(c, _png(10), meta_id=1))

        with psycopg.connect(libpq_url(database_url)) as holder:
            holder.execute("LOCK TABLE image_hashes IN SHARE MODE")
            t = threading.Thread(target=upload)
            t.start()
            deadline = time.monotonic() + 30
            while not holder.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                    " 'ahashdb-serve' AND wait_event_type = 'Lock'").fetchone()[0]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            proc.terminate()
            time.sleep(0.5)
            assert proc.poll() is None  # still finishing the request in flight
        t.join(60)
        # uvicorn ends by raising the signal again once it has shut down gracefully
        assert proc.wait(60) in (0, -15)
        assert result and result[0].status_code == 200, result
        assert result[0].json()["stored"] is not None
    finally:
        if proc.poll() is None:
            proc.kill()
        owner.connection.execute("DELETE FROM ahash_api_keys WHERE company_id = 3")
        owner.connection.execute("DELETE FROM image_hashes WHERE company_id = 3")
        owner.close()


def test_an_operators_key_names_the_company_and_a_company_key_cannot(
    clean: Service, store: HashStore,
) -> None:
    ops = store.create_key(None, "ops")
    with clean.client(clean.key1) as one:
        h = _upload(one, _png(12), meta_id=5).json()["stored"]["hash"]
        assert one.get("/v1/search", params={"hash": h, "company_id": 2}).status_code == 403
        assert one.get("/v1/search", params={"hash": h, "company_id": 1}).status_code == 200
    with clean.client(ops) as op:
        assert op.get("/v1/search", params={"hash": h}).status_code == 400
        found = op.get("/v1/search", params={"hash": h, "company_id": 1}).json()["matches"]
        assert [m["meta_id"] for m in found] == [5]
        assert op.get("/v1/search", params={"hash": h, "company_id": 2}).json() == {
            "matches": []}
