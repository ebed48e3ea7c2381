"""A real HTTP server on 127.0.0.1 whose paths fail the way web and object-store downloads
fail, for the tests of URL ingest: each path names its behaviour.

- ``/ok/<n>.jpg``: a JPEG (photo ``n``);
- ``/missing.jpg`` 404, ``/denied.jpg`` 403, ``/throttled.jpg`` 429 every time;
- ``/moved.jpg`` 301 with S3's PermanentRedirect body (a bucket in another region);
- ``/flaky/<n>.jpg``: 503 for the first two requests, then the JPEG (a transient error);
- ``/reset.jpg``: the connection is reset (RST) before any response;
- ``/truncated.jpg``: headers announce the whole JPEG, a third of it is sent, then close;
- ``/slow.jpg``: sends nothing for ``SLOW_SECONDS``.

``hits`` counts the requests per path. As an S3-compatible endpoint the same paths are the
objects of the bucket ``faults`` (``s3://faults/flaky/2.jpg``), whose prefix listings are
empty.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.imagegen import encode, photo

SLOW_SECONDS = 5.0
#: As an S3 endpoint (path-style), the paths are the objects of this bucket.
BUCKET = "faults"


def jpeg(n: int) -> bytes:
    return encode(photo(n, (240, 180)), "JPEG", quality=90)


class FaultServer(ThreadingHTTPServer):
    """``with FaultServer() as s: s.url("/ok/1.jpg")``."""

    daemon_threads = True
    request_queue_size = 128  # (socketserver's 5 drops bursts of connections: SYN retries)

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/jpeg" if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        # (the client may have given up: the slow object, past its timeout)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        if path == f"/{BUCKET}":  # a prefix listing: S3's answer for a prefix holding nothing
            self._send(200, b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult'
                       b' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>faults</Name>'
                       b"<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
                       b"</ListBucketResult>")
            return
        path = path.removeprefix(f"/{BUCKET}")  # the same paths as objects of one bucket
        with self.server._lock:
            self.server.hits[path] += 1
            hits = self.server.hits[path]
        if path.startswith("/ok/"):
            self._send(200, jpeg(int(path[4:].split(".")[0])))
        elif path.startswith("/flaky/"):
            if hits <= 2:
                self._send(503, b"try again")
            else:
                self._send(200, jpeg(int(path[7:].split(".")[0])))
        elif path == "/missing.jpg":
            self._send(404, b"no such object")
        elif path == "/denied.jpg":
            self._send(403, b"access denied")
        elif path == "/moved.jpg":  # S3's answer from the wrong region (no Location)
            self._send(301, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>'
                       b"PermanentRedirect</Code><Message>The bucket you are attempting to"
                       b" access must be addressed using the specified endpoint.</Message>"
                       b"</Error>")
        elif path == "/throttled.jpg":
            self._send(429, b"slow down")
        elif path == "/reset.jpg":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif path == "/truncated.jpg":
            body = jpeg(7)
            self._send(200, body[: len(body) // 3], length=len(body))
            self.close_connection = True
        elif path == "/slow.jpg":
            time.sleep(SLOW_SECONDS)
            self._send(200, jpeg(8))
        else:
            self._send(404, b"unknown")
