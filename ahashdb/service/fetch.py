"""Fetching an image by URL for the service, with a timeout, a size cap, and no requests to
private, loopback or link-local addresses unless allowed (server-side request forgery)."""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

__all__ = ["fetch_image"]


def _refused(host: str, settings: Any) -> str | None:
    """Why ``host`` may not be fetched, or None."""
    if settings.allow_private_urls:
        return None
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return f"cannot resolve {host}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return f"{host} is a private, loopback or reserved address ({address})"
    return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        return None  # a redirect could lead to an address checked by nobody


def fetch_image(url: str, settings: Any) -> bytes:
    """The bytes at ``url`` (http or https), or a Problem naming why not."""
    from .app import Problem

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Problem(400, "Bad Request", f"url {url!r}: expected http:// or https://")
    if reason := _refused(parts.hostname, settings):
        raise Problem(400, "Bad Request", f"url refused: {reason}")
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(urllib.request.Request(url, headers={"User-Agent": "ahashdb"}),
                         timeout=settings.url_timeout) as response:
            data = response.read(settings.max_upload + 1)
    except urllib.error.HTTPError as exc:
        raise Problem(400, "Bad Request", f"url answered {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Problem(400, "Bad Request", f"url cannot be fetched: {reason}") from None
    if len(data) > settings.max_upload:
        raise Problem(413, "Payload Too Large",
                      f"the image at the url is over the limit of {settings.max_upload:,} bytes")
    return data
