"""The HTTP API: hash an upload and check-and-insert it atomically, search, list and delete,
each request bound to the company of its key inside PostgreSQL.

Every request that touches rows runs in one transaction that starts with
``ahash_login(key)``: the key is checked against stored hashes and the transaction is bound
to its company (strict row-level security enforces that binding; in trusted mode the
company setting is set for the transaction too). The company never comes from the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import libpq_url
from ..errors import AhashdbError, ImageError, InvalidHash
from ..hashes import ALGORITHMS, DEFAULT_MAX_DISTANCE, hash_image, to_hex
from ..keys import KeyRefused
from ..store import HashStore
from .fetch import fetch_image

log = logging.getLogger("ahashdb.serve")

PROBLEM = "application/problem+json"
DEFAULT_MAX_UPLOAD = 50 * 2**20


@dataclass
class Settings:
    """How the service runs."""

    url: str
    max_upload: int = DEFAULT_MAX_UPLOAD
    allow_private_urls: bool = False
    url_timeout: float = 10.0
    #: Folders whose images /v1/images/{id}/thumbnail may read (a row's source must be inside).
    media_roots: list[str] = field(default_factory=list)
    pool_size: int = 8


class Problem(Exception):
    """An error answered as application/problem+json."""

    def __init__(self, status: int, title: str, detail: str | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail


def problem(status: int, title: str, detail: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem response (no stack traces, ever)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


class UploadLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before it is read on
    (by its Content-Length, or as the bytes arrive)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = problem(413, "Payload Too Large",
                          f"the request body is over the limit of {self.limit:,} bytes")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await too_big(scope, receive, send)
        seen = 0
        started = False

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooBig
            return message

        async def sending(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _TooBig:
            if not started:
                await too_big(scope, receive, send)


class _TooBig(Exception):
    pass


def create_app(settings: Settings) -> FastAPI:
    """The ASGI application (``ahashdb serve`` runs it with uvicorn)."""
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(libpq_url(settings.url), min_size=1, max_size=settings.pool_size,
                          kwargs={"autocommit": True, "application_name": "ahashdb-serve"},
                          open=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        pool.open(wait=False)
        yield
        pool.close()

    app = FastAPI(title="ahashdb", version="1", lifespan=lifespan,
                  description="Perceptual image hashes in PostgreSQL: atomic check-and-insert"
                  " of uploads, exact near-duplicate search, per-company keys.")
    app.state.settings = settings
    app.state.pool = pool

    app.add_middleware(UploadLimit, limit=settings.max_upload)  # inside the request log

    @app.middleware("http")
    async def one_line_per_request(request: Request, call_next: Any) -> Response:
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - logged without the request's secrets, answered 500
            log.exception("%s %s failed", request.method, request.url.path)
            response = problem(500, "Internal Server Error")
        log.info("%s %s %d %.1f ms", request.method, request.url.path, response.status_code,
                 (time.perf_counter() - t0) * 1000)
        return response

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem(exc.status, exc.title, exc.detail, headers)

    @app.exception_handler(AhashdbError)
    async def on_ahashdb_error(request: Request, exc: AhashdbError) -> JSONResponse:
        return problem(400, "Bad Request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return problem(400, "Bad Request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))

    app.include_router(_routes(settings, pool))
    from .review import review_routes

    app.include_router(review_routes(settings, pool))
    return app


def bearer_key(request: Request) -> str:
    """The request's key: ``Authorization: Bearer KEY`` (or the review page's cookie)."""
    auth = request.headers.get("authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    cookie = request.cookies.get("ahashdb_key")
    if cookie:
        return cookie
    raise Problem(401, "Unauthorized", "send Authorization: Bearer <key>")


@contextmanager
def tenant(pool: Any, url: str, key: str,
           company_id: int | None = None) -> Iterator[tuple[HashStore, int]]:
    """A store over a pooled connection, in one transaction bound to ``key``'s company (an
    operator's key: to ``company_id``)."""
    with pool.connection() as conn:
        store = HashStore.over(conn, url)
        try:
            with store.login(key, company_id) as company:
                yield store, company
        except KeyRefused as exc:
            title = {401: "Unauthorized", 403: "Forbidden"}.get(exc.status, "Bad Request")
            raise Problem(exc.status, title, str(exc)) from None
        finally:
            store.close()


def company_param(company_id: Annotated[int | None, Query(
        description="With an operator's key (keys create --all-companies): the company to"
        " work on. A company's own key may name only its own company.")] = None) -> int | None:
    """The ``company_id`` query parameter, which only an operator's key needs."""
    return company_id


# Module level: FastAPI resolves the endpoints' (string) annotations in this namespace.
Key = Annotated[str, Depends(bearer_key)]
Company = Annotated[int | None, Depends(company_param)]
Algorithm = Annotated[str, Query(description="ahash, phash, dhash or whash")]


def _algorithm(value: str) -> str:
    if value not in ALGORITHMS:
        raise Problem(400, "Bad Request",
                      f"algorithm {value!r}: expected one of {', '.join(ALGORITHMS)}")
    return value


def _match(m: Any) -> dict[str, Any]:
    return {"id": m.id, "meta_id": m.meta_id, "hash": m.hash, "distance": m.distance,
            "source": m.source}


def _found(s: HashStore, company: int, hash_hex: str | None, meta_id: int | None,
           algorithm: str, **how: Any) -> list[Any]:
    """Matches of a hash, or (``meta_id``) look-alikes of a stored object, itself left out
    (:meth:`HashStore.similar_to_meta_id`); ``how``: max_distance and limit, or k."""
    if (hash_hex is None) == (meta_id is None):
        raise Problem(400, "Bad Request", "give hash or meta_id (exactly one)")
    if meta_id is not None:
        if not s.hashes_of(company_id=company, meta_id=meta_id, algorithm=algorithm):
            raise Problem(404, "Not Found", f"meta_id {meta_id}: no {algorithm} hash stored")
        return [m for _, m in s.similar_to_meta_id(meta_id, company_id=company,
                                                   algorithm=algorithm, **how)]
    from ..hashes import from_hex

    try:
        from_hex(hash_hex)
    except InvalidHash as exc:
        raise Problem(400, "Bad Request", str(exc)) from None
    if "k" in how:
        return s.nearest(hash_hex, company_id=company, algorithm=algorithm, **how)
    return s.search(hash_hex, company_id=company, algorithm=algorithm, **how)


def _routes(settings: Settings, pool: Any) -> Any:
    from fastapi import APIRouter

    router = APIRouter()
    url = settings.url

    @router.get("/healthz", summary="The process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The database answers and its schema is current")
    def readyz() -> Response:
        from ..connection import SCHEMA_REVISION, read_revision

        try:
            with pool.connection(timeout=5) as conn:
                revision = read_revision(conn)
                mode = HashStore.over(conn, url).row_level_security_mode()
        except Exception:  # noqa: BLE001 - any failure here is "not ready"
            return problem(503, "Service Unavailable", "the database cannot be reached")
        if revision != SCHEMA_REVISION:
            return problem(503, "Service Unavailable",
                           f"schema at {revision}, this ahashdb needs {SCHEMA_REVISION}")
        return JSONResponse({"status": "ready", "schema_revision": revision,
                             "row_level_security": mode})

    @router.post("/v1/images", summary="Hash an image; store it unless it is a near-duplicate")
    async def post_image(
        request: Request,
        key: Key,
        company_id: Company,
        file: Annotated[UploadFile | None, File(description="The image")] = None,
        max_distance: Annotated[int | None, Query(ge=0, le=64)] = None,
        meta_id: Annotated[int | None, Query(description="Your id for the image")] = None,
        source: Annotated[str | None, Query(max_length=4096)] = None,
        algorithm: Algorithm = "ahash",
        store: Annotated[str, Query(pattern="^(if-new|always|never)$")] = "if-new",
    ) -> dict[str, Any]:
        algorithm = _algorithm(algorithm)
        if file is not None:
            data = await file.read()
            name = file.filename or "upload"
        elif request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("url"), str):
                raise Problem(400, "Bad Request", 'send a multipart "file" or JSON {"url": …}')
            data = await asyncio.to_thread(fetch_image, body["url"], settings)
            name = body["url"]
            source = source or body["url"]
        else:
            raise Problem(400, "Bad Request", 'send a multipart "file" or JSON {"url": …}')
        if store != "never" and meta_id is None:
            raise Problem(400, "Bad Request", f"meta_id is required to store (store={store})")
        try:
            h = await asyncio.to_thread(hash_image, data, algorithm)
        except ImageError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise Problem(400, "Bad Request", f"{name}: {reason}") from None
        t = DEFAULT_MAX_DISTANCE[algorithm] if max_distance is None else max_distance
        return await asyncio.to_thread(_check_and_store, key, company_id, h, t, meta_id,
                                       source or name, algorithm, store)

    def _check_and_store(key: str, company_id: int | None, h: int, t: int,
                         meta_id: int | None, source: str, algorithm: str,
                         mode: str) -> dict[str, Any]:
        with tenant(pool, url, key, company_id) as (s, company):
            if mode == "if-new":
                result = s.insert_if_new(h, company_id=company, meta_id=meta_id,
                                         max_distance=t, source=source, algorithm=algorithm,
                                         hashed_here=True)
                stored, matches = result.stored, result.matches
            else:
                matches = s.search(h, company_id=company, max_distance=t, limit=100,
                                   algorithm=algorithm)
                stored = None
                if mode == "always":
                    new_id = s.insert(h, company_id=company, meta_id=meta_id, source=source,
                                      algorithm=algorithm)
                    same = s.search(h, company_id=company, max_distance=0, algorithm=algorithm)
                    stored = next((m for m in same if m.id == new_id), None)
        return {"hash": to_hex(h), "matches": [_match(m) for m in matches],
                "stored": None if stored is None else _match(stored)}

    @router.get("/v1/search", summary="Stored images within max_distance of a hash")
    def search(
        key: Key,
        company_id: Company,
        hash: Annotated[str | None, Query(description="16 hex digits")] = None,  # noqa: A002
        meta_id: int | None = None,
        max_distance: Annotated[int | None, Query(ge=0, le=64)] = None,
        limit: Annotated[int | None, Query(ge=0, le=10_000)] = 100,
        algorithm: Algorithm = "ahash",
    ) -> dict[str, Any]:
        algorithm = _algorithm(algorithm)
        with tenant(pool, url, key, company_id) as (s, company):
            found = _found(s, company, hash, meta_id, algorithm, max_distance=max_distance,
                           limit=limit)
        return {"matches": [_match(m) for m in found]}

    @router.get("/v1/nearest", summary="The k stored images closest to a hash")
    def nearest(
        key: Key,
        company_id: Company,
        hash: Annotated[str | None, Query(description="16 hex digits")] = None,  # noqa: A002
        meta_id: int | None = None,
        k: Annotated[int, Query(ge=0, le=10_000)] = 10,
        algorithm: Algorithm = "ahash",
    ) -> dict[str, Any]:
        algorithm = _algorithm(algorithm)
        with tenant(pool, url, key, company_id) as (s, company):
            found = _found(s, company, hash, meta_id, algorithm, k=k)
        return {"matches": [_match(m) for m in found]}

    @router.get("/v1/duplicates", summary="Groups of look-alike images, largest first")
    def duplicates(
        key: Key,
        company_id: Company,
        max_distance: Annotated[int, Query(ge=0, le=16)] = 4,
        algorithm: Algorithm = "ahash",
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        algorithm = _algorithm(algorithm)
        with tenant(pool, url, key, company_id) as (s, company):
            groups = []
            for g in s.duplicates(company_id=company, max_distance=max_distance,
                                  algorithm=algorithm):
                groups.append({"size": len(g), "members": [_match(m) for m in g]})
                if len(groups) >= limit:
                    break
        return {"groups": groups}

    @router.delete("/v1/images/{row_id}", summary="Delete one stored row")
    def delete_one(key: Key, company_id: Company, row_id: int) -> dict[str, int]:
        with tenant(pool, url, key, company_id) as (s, company):
            n = s.delete(company_id=company, ids=[row_id])
        if not n:
            raise Problem(404, "Not Found", f"no row {row_id}")
        return {"deleted": n}

    @router.delete("/v1/images", summary="Delete every hash of one meta_id")
    def delete_meta(key: Key, company_id: Company, meta_id: int) -> dict[str, int]:
        with tenant(pool, url, key, company_id) as (s, company):
            return {"deleted": s.delete(company_id=company, meta_id=meta_id)}

    @router.post("/v1/decisions", summary="Mark rows as not duplicates of each other")
    async def decide(request: Request, key: Key, company_id: Company) -> dict[str, int]:
        body = await request.json()
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or len(ids) < 2 or not all(isinstance(i, int) for i in ids):
            raise Problem(400, "Bad Request", 'send {"ids": [id, id, …]} (two or more)')
        with tenant(pool, url, key, company_id) as (s, company):
            return {"recorded": s.mark_not_duplicates(company_id=company, ids=ids)}

    @router.post("/v1/groups/keep", summary="Keep one row of a group, delete the others")
    async def keep(request: Request, key: Key, company_id: Company) -> dict[str, int]:
        body = await request.json()
        ids = body.get("ids") if isinstance(body, dict) else None
        kept = body.get("keep") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not isinstance(kept, int) or kept not in ids:
            raise Problem(400, "Bad Request", 'send {"keep": id, "ids": [id, …]}')
        with tenant(pool, url, key, company_id) as (s, company):
            return {"deleted": s.keep_only(company_id=company, keep=kept, ids=ids)}

    return router
