"""``ahashdb serve``: an HTTP API (FastAPI on uvicorn) and a page to review duplicates, over
:class:`ahashdb.HashStore`. Needs ``pip install 'ahashdb[service]'``."""

from __future__ import annotations

from .app import DEFAULT_MAX_UPLOAD, Settings, create_app

__all__ = ["DEFAULT_MAX_UPLOAD", "Settings", "create_app", "serve"]


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the service until SIGTERM or Ctrl-C (requests in flight finish first)."""
    import logging

    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, access_log=False,
                log_level="warning", timeout_graceful_shutdown=30)
