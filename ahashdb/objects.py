"""Images where they live: object stores (``s3://``, ``gs://``) and web URLs, through fsspec.

A prefix (``s3://bucket/photos/``) is listed recursively, image files only; an object or a
web URL is one input. Listing happens first (so the total is known), then objects are
downloaded many at a time by a thread pool while the hashing processes work, each object
streamed into memory once and never written to disk. Credentials come from the standard
chains (environment, profile, instance role); an S3-compatible store (MinIO, Ceph, Aliyun
OSS) is reached through ``--endpoint-url``, ``$AWS_ENDPOINT_URL_S3`` or ``$AWS_ENDPOINT_URL``.
Needs ``pip install 'ahashdb[objects]'`` (s3fs; gcsfs for ``gs://``).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import InvalidInput

__all__ = ["IMAGE_SUFFIXES", "ObjectStore", "clean_url", "is_url"]

SCHEMES = ("s3", "gs", "gcs", "http", "https")
#: What a prefix listing keeps, as a folder walk of a bucket.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".jfif")


def is_url(text: str) -> bool:
    """True for ``s3://``, ``gs://`` and ``http(s)://`` inputs."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def clean_url(url: str) -> str:
    """``url`` without credentials, query string or fragment: what ``source`` stores, so no
    secret (a password, a signed URL's signature) reaches the database or the output."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class Listed:
    """One object found by a listing: its URL, and a change marker (ETag, or size and
    modification time) and its modification time when the store gives them."""

    url: str
    marker: str | None
    modified: datetime | None


class ObjectStore:
    """Lists and fetches objects for an ingest; one fsspec filesystem per scheme."""

    def __init__(self, endpoint_url: str | None = None, timeout: float = 60.0,
                 retries: int = 5) -> None:
        self.endpoint_url = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                             or os.environ.get("AWS_ENDPOINT_URL") or None)
        self.timeout = timeout
        self.retries = retries
        self._fs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _filesystem(self, scheme: str) -> Any:
        scheme = "gs" if scheme == "gcs" else scheme
        with self._lock:
            if scheme not in self._fs:
                self._fs[scheme] = self._make(scheme)
            return self._fs[scheme]

    def _make(self, scheme: str) -> Any:
        try:
            import fsspec
        except ImportError:
            raise InvalidInput("object-store inputs need pip install 'ahashdb[objects]'"
                               ) from None
        if scheme == "s3":
            try:
                import s3fs
            except ImportError:
                raise InvalidInput("s3:// inputs need pip install 'ahashdb[objects]'") from None
            # Transient errors (5xx, resets, throttling) are retried with backoff by botocore.
            return s3fs.S3FileSystem(
                endpoint_url=self.endpoint_url, skip_instance_cache=True,
                config_kwargs={"connect_timeout": self.timeout, "read_timeout": self.timeout,
                               "retries": {"max_attempts": self.retries, "mode": "standard"}})
        if scheme == "gs":
            try:
                return fsspec.filesystem("gs", skip_instance_cache=True)
            except ImportError:
                raise InvalidInput("gs:// inputs need pip install gcsfs") from None
        return fsspec.filesystem(scheme, skip_instance_cache=True,
                                 client_kwargs={"timeout": _aiohttp_timeout(self.timeout)})

    def expand(self, url: str) -> Iterator[Listed]:
        """The objects an input names: a prefix's image files (recursively, in key order),
        or the one object or web URL. A store that cannot be listed at all (no such bucket,
        bad credentials) raises InvalidInput naming the input."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            yield Listed(url, None, None)
            return
        fs = self._filesystem(scheme)
        path = f"{parts.netloc}{parts.path}"
        try:
            if url.endswith("/") or fs.isdir(path):
                found = fs.find(path, detail=True)
                for key in sorted(found):
                    info = found[key]
                    if PurePosixPath(key).suffix.lower() in IMAGE_SUFFIXES \
                            and not PurePosixPath(key).name.startswith("."):
                        yield Listed(f"{scheme}://{key}", _marker(info), _modified(info))
                return
            info = fs.info(path)
        except FileNotFoundError as exc:
            if url.endswith("/") or not fs.exists(parts.netloc):
                detail = str(exc).strip() if str(exc).strip() != path else "not found"
                raise InvalidInput(f"{clean_url(url)}: cannot list ({detail})") from None
            yield Listed(url, None, None)  # a missing object: reported when fetched
            return
        except (PermissionError, OSError) as exc:
            raise InvalidInput(f"{clean_url(url)}: cannot list ({_reason(exc)})") from None
        yield Listed(url, _marker(info), _modified(info))

    def fetch(self, url: str) -> bytes:
        """The object's bytes. Transient failures (HTTP 5xx and 429, resets, bodies cut
        short) are retried with jittered exponential backoff, ``retries`` attempts in all:
        botocore does it for s3://, this does it for web URLs. A timeout is not retried."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        fs = self._filesystem(scheme)
        if scheme not in ("http", "https"):
            return fs.cat_file(f"{parts.netloc}{parts.path}")
        attempt = 1
        while True:
            try:
                return fs.cat_file(url)
            except Exception as exc:
                if attempt >= self.retries or not _transient(exc):
                    raise
            time.sleep(min(5.0, 0.1 * 2 ** attempt) * (0.5 + random.random()))
            attempt += 1

    def prefetch(self, items: Iterable[Any], concurrency: int = 32) -> Iterator[Any]:
        """``items`` in order, each URL item's ``data`` fetched beforehand (or its ``error``
        set), with up to ``concurrency`` downloads in flight."""
        window: list[tuple[Any, Future[bytes] | None]] = []
        with ThreadPoolExecutor(concurrency, thread_name_prefix="ahashdb-fetch") as pool:
            for item in items:
                wanted = item.error is None and item.data is None and is_url(item.path)
                window.append((item, pool.submit(self.fetch, item.path) if wanted else None))
                if len(window) >= concurrency * 2:
                    yield _settle(*window.pop(0))
            while window:
                yield _settle(*window.pop(0))


def _settle(item: Any, future: Future[bytes] | None) -> Any:
    if future is not None:
        try:
            item.data = future.result()
        except Exception as exc:  # noqa: BLE001 - any failure is this object's, reported
            item.error = _reason(exc)
    return item


def _transient(exc: BaseException) -> bool:
    """A failure worth another try: the server busy or throttling, or the connection lost."""
    try:
        import aiohttp
    except ImportError:
        return False
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError,
                            aiohttp.ClientPayloadError, ConnectionResetError))


def _reason(exc: BaseException) -> str:
    """A one-line reason for a fetch or listing failure, without secrets (no URL: a signed
    one carries its signature) or tracebacks."""
    import asyncio

    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, PermissionError):
        return "access denied"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    try:
        import aiohttp
    except ImportError:
        aiohttp = None
    if aiohttp is None:
        pass
    elif isinstance(exc, aiohttp.ClientResponseError):
        what = {401: "access denied", 403: "access denied", 429: "throttled"}.get(
            exc.status, "server error" if exc.status >= 500 else "refused")
        return f"{what} (HTTP {exc.status} {exc.message})"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated body (the connection closed before the whole object came)"
    elif isinstance(exc, (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
        return "connection reset"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"\w+://[^\s'\"<>]+", lambda m: clean_url(m.group(0)), text)
    return f"{type(exc).__name__}: {text}"[:300]


def _marker(info: dict[str, Any]) -> str | None:
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    size, modified = info.get("size"), _modified(info)
    return f"size:{size}:{modified.isoformat()}" if size is not None and modified else None


def _modified(info: dict[str, Any]) -> datetime | None:
    value = info.get("LastModified") or info.get("mtime") or info.get("updated")
    return value if isinstance(value, datetime) else None


def _aiohttp_timeout(seconds: float) -> Any:
    import aiohttp

    return aiohttp.ClientTimeout(total=seconds)
