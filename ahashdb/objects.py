"""Images where they live: object stores (``s3://``, ``gs://``, through obstore) and web
URLs (through fsspec's HTTP filesystem).

A prefix (``s3://bucket/photos/``) is listed recursively, image files only; an object or a
web URL is one input. Listing happens first (so the total is known), then objects are
downloaded many at a time by a thread pool while the hashing processes work, each object
streamed into memory once and never written to disk. Credentials come from the standard
chains (environment, profile, instance role); an S3-compatible store (MinIO, Ceph, Aliyun
OSS) is reached through ``--endpoint-url``, ``$AWS_ENDPOINT_URL_S3`` or ``$AWS_ENDPOINT_URL``.
Google Cloud Storage takes its credentials from ``$GOOGLE_APPLICATION_CREDENTIALS`` or the
instance's; ``$GOOGLE_BASE_URL`` points it at an emulator. Needs
``pip install 'ahashdb[objects]'`` (obstore, boto3 for AWS profiles, fsspec and aiohttp).
"""

from __future__ import annotations

import functools
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    """Lists and fetches objects for an ingest: one obstore client per bucket for ``s3://``
    and ``gs://``, fsspec's HTTP filesystem for web URLs."""

    def __init__(self, endpoint_url: str | None = None, timeout: float = 60.0,
                 retries: int = 5) -> None:
        self.endpoint_url = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                             or os.environ.get("AWS_ENDPOINT_URL") or None)
        self.timeout = timeout
        self.retries = retries
        self._stores: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    @functools.cached_property
    def _credentials(self) -> Any:
        """The credential provider for every S3 bucket of this store (resolved once)."""
        return _profile_credentials()

    def _store(self, scheme: str, bucket: str) -> Any:
        scheme = "gs" if scheme == "gcs" else scheme
        with self._lock:
            if (scheme, bucket) not in self._stores:
                self._stores[scheme, bucket] = self._make(scheme, bucket)
            return self._stores[scheme, bucket]

    def _make(self, scheme: str, bucket: str) -> Any:
        if scheme in ("http", "https"):
            try:
                import fsspec
            except ImportError:
                raise InvalidInput("web URLs need pip install 'ahashdb[objects]'") from None
            return fsspec.filesystem(scheme, skip_instance_cache=True,
                                     client_kwargs={"timeout": _aiohttp_timeout(self.timeout)})
        try:
            from obstore.store import GCSStore, S3Store
        except ImportError:
            raise InvalidInput(f"{scheme}:// inputs need pip install 'ahashdb[objects]'"
                               ) from None
        # Transient errors (5xx, resets, throttling) are retried by obstore with jittered
        # exponential backoff; none is retried once `timeout` has passed since the first try.
        common: dict[str, Any] = {
            "client_options": {"timeout": timedelta(seconds=self.timeout),
                               "connect_timeout": timedelta(seconds=min(self.timeout, 10.0))},
            "retry_config": {"max_retries": max(self.retries - 1, 0),
                             "retry_timeout": timedelta(seconds=self.timeout),
                             "backoff": {"init_backoff": timedelta(milliseconds=100),
                                         "max_backoff": timedelta(seconds=5), "base": 2}}}
        if scheme == "gs":
            return GCSStore(bucket, **common)
        if self.endpoint_url:
            common["endpoint"] = self.endpoint_url
            common["client_options"]["allow_http"] = self.endpoint_url.startswith("http://")
        if self._credentials is not None:
            common["credential_provider"] = self._credentials
        return S3Store(bucket, **common)

    def expand(self, url: str) -> Iterator[Listed]:
        """The objects an input names: a prefix's image files (recursively, in key order),
        or the one object or web URL. A store that cannot be listed at all (no such bucket,
        bad credentials) raises InvalidInput naming the input."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            yield Listed(url, None, None)
            return
        import obstore

        store = self._store(scheme, parts.netloc)
        key = parts.path.lstrip("/")
        try:
            if not url.endswith("/") and key:
                try:
                    meta = obstore.head(store, key)
                except FileNotFoundError:
                    meta = None
                except Exception:  # noqa: BLE001 - denied, a server error, a timeout: this
                    yield Listed(url, None, None)  # object's, and reported when it is fetched
                    return
                if meta is not None:
                    yield Listed(url, _marker(meta), meta.get("last_modified"))
                    return
            prefix = key.rstrip("/") + "/" if key else None
            found = sorted((m for batch in obstore.list(store, prefix=prefix, chunk_size=1000)
                            for m in batch), key=lambda m: m["path"])
        except Exception as exc:  # noqa: BLE001 - any listing failure is this input's
            raise InvalidInput(f"{clean_url(url)}: cannot list ({_reason(exc)})") from None
        if not found and not url.endswith("/"):
            yield Listed(url, None, None)  # a missing object: reported when fetched
            return
        for meta in found:
            path = PurePosixPath(meta["path"])
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
                yield Listed(f"{scheme}://{parts.netloc}/{meta['path']}", _marker(meta),
                             meta.get("last_modified"))

    def fetch(self, url: str) -> bytes:
        """The object's bytes. Transient failures (HTTP 5xx and 429, resets, bodies cut
        short) are retried with jittered exponential backoff, ``retries`` attempts in all:
        obstore does it for object stores, this does it for web URLs. A timeout is not
        retried."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            import obstore

            store = self._store(scheme, parts.netloc)
            return bytes(obstore.get(store, parts.path.lstrip("/")).bytes())
        fs = self._store(scheme, "")
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
    if type(exc).__module__.startswith("obstore"):
        return _store_reason(exc)
    try:
        import aiohttp
    except ImportError:
        aiohttp = None
    if aiohttp is not None:
        if isinstance(exc, aiohttp.ClientResponseError):
            return _status_reason(exc.status, exc.message)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return TRUNCATED
        if isinstance(exc, (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
            return "connection reset"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    return f"{type(exc).__name__}: {_first_line(exc)}"[:300]


TRUNCATED = "truncated body (the connection closed before the whole object came)"


def _status_word(status: int) -> str:
    return {401: "access denied", 403: "access denied", 404: "not found",
            429: "throttled"}.get(status, "server error" if status >= 500 else "refused")


def _status_reason(status: int, message: str) -> str:
    return f"{_status_word(status)} (HTTP {status} {message})".replace(" )", ")")


def _store_reason(exc: BaseException) -> str:
    """obstore's errors carry the whole request and the server's XML or JSON body in their
    text: keep the status and the server's own message."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    text = str(exc)
    said = re.search(r"<Message>([^<]+)</Message>|\"message\":\s*\"([^\"]+)\"", text)
    message = (said.group(1) or said.group(2)).strip() if said else ""
    status = re.search(r"status code: (\d{3})", text)
    if status and status.group(1) == "404" and message:
        return message  # "The specified bucket does not exist"
    if (status and status.group(1) == "301") or "redirect without location" in text.lower():
        return ("the bucket is in another region: set AWS_REGION (or the profile's region)"
                " to the bucket's")
    if status:
        code = int(status.group(1))
        return f"{_status_word(code)}: {message}" if message else _status_reason(code, "")
    if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)):
        return f"access denied: {message}" if message else "access denied"
    lowered = re.sub(r"retry_timeout: [^,\s]*", "", text.lower())  # a setting, not a fault
    if "timed out" in lowered or "timedout" in lowered or "kind: timeout" in lowered:
        return "timed out"
    if "body error" in lowered or "error decoding response body" in lowered \
            or "unexpected eof" in lowered:
        return TRUNCATED
    if "connection reset" in lowered or "connection closed" in lowered \
            or "error sending request" in lowered:
        return "connection reset"
    return f"{type(exc).__name__}: {_first_line(exc)}"[:300]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"\w+://[^\s'\"<>]+", lambda m: clean_url(m.group(0)), text)


def _marker(meta: dict[str, Any]) -> str | None:
    """The change marker of a listed object: its ETag, else its size and modification
    time (the spelling earlier releases stored, so their re-runs stay incremental)."""
    etag = meta.get("e_tag")
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    size, modified = meta.get("size"), meta.get("last_modified")
    return f"size:{size}:{modified.isoformat()}" if size is not None and modified else None


def _profile_credentials() -> Any:
    """botocore's whole credential chain (environment, shared profile files, SSO, instance
    role) when boto3 is installed and finds credentials; else None, and obstore's own chain
    (environment, web identity, instance role) applies. The provider also carries the
    profile's region. Keys in the environment come first in both chains, so with them, and a
    region in the environment or no config file to hold one, obstore reads the environment
    itself (importing boto3 costs 0.2 s)."""
    config = os.environ.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY") and (
            os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or not os.path.exists(config)):
        return None
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        return None
    session = boto3.Session()
    if session.get_credentials() is None:
        return None
    return Boto3CredentialProvider(session)


def _aiohttp_timeout(seconds: float) -> Any:
    import aiohttp

    return aiohttp.ClientTimeout(total=seconds)
