"""The review page: a company's duplicate groups with thumbnails, two decisions per group,
and a view that shows what an image would match. Server-rendered HTML, a little JavaScript,
signed in with a key (a cookie, or the same Bearer header the API takes)."""

from __future__ import annotations

import html
import io
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import AhashdbError
from .app import Problem, bearer_key, tenant

THUMBNAIL = (160, 160)
_CACHE_SIZE = 512

_STYLE = """
body{font:15px system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:20px;align-items:center}
header a{color:#cfe0ff} main{padding:16px 20px}
.group{background:#fff;border-radius:8px;padding:12px 16px;margin:0 0 16px;
 box-shadow:0 1px 3px rgba(0,0,0,.12)}
.group h2{font-size:16px;margin:0 0 10px;display:flex;gap:12px;align-items:center}
.members{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;width:170px;font-size:12px} figure img{width:160px;height:160px;
 object-fit:contain;background:#e9ebef;border-radius:4px;display:block}
figcaption{margin-top:4px;overflow-wrap:anywhere} button{cursor:pointer}
.empty{color:#666} form.signin{max-width:420px;margin:60px auto;background:#fff;padding:20px;
 border-radius:8px} input[type=password]{width:100%;padding:6px;margin:8px 0}
.error{color:#b00020}
"""

_SCRIPT = """
async function post(url, body) {
  const r = await fetch(url, {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  if (!r.ok) { alert((await r.json()).detail || r.statusText); return; }
  location.reload();
}
document.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-action]');
  if (!b) return;
  const ids = b.closest('.group').dataset.ids.split(',').map(Number);
  if (b.dataset.action === 'apart') post('/v1/decisions', {ids});
  if (b.dataset.action === 'keep') post('/v1/groups/keep', {keep: Number(b.dataset.keep), ids});
});
"""

_MATCH_SCRIPT = """
document.getElementById('pick').addEventListener('change', async (e) => {
  const file = e.target.files[0]; if (!file) return;
  const data = new FormData(); data.append('file', file);
  const r = await fetch('/v1/images?store=never', {method: 'POST', body: data,
    credentials: 'same-origin'});
  const out = document.getElementById('matches'); out.textContent = '';
  const body = await r.json();
  if (!r.ok) { out.textContent = body.detail || r.statusText; return; }
  const head = document.createElement('p');
  head.textContent = `hash ${body.hash}: ${body.matches.length} match(es)`;
  out.appendChild(head);
  for (const m of body.matches) {
    const f = document.createElement('figure');
    const img = document.createElement('img');
    img.src = `/v1/images/${m.id}/thumbnail`; img.alt = `id ${m.id}`;
    const c = document.createElement('figcaption');
    c.textContent =
      `id ${m.id} · meta_id ${m.meta_id} · distance ${m.distance} · ${m.source ?? ''}`;
    f.append(img, c); out.appendChild(f);
  }
});
"""


def _page(title: str, body: str, script: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
        f"</title><meta name=viewport content='width=device-width'><style>{_STYLE}</style>"
        f"</head><body>{body}<script>{script}</script></body></html>", status_code=status)


def _signin(error: str | None = None, status: int = 200) -> HTMLResponse:
    note = f"<p class=error>{html.escape(error)}</p>" if error else ""
    return _page("ahashdb review: sign in", f"""
<form class=signin method=post action=/review/login>
<h1>ahashdb review</h1><p>Sign in with your company's key.</p>{note}
<input type=password name=key autocomplete=off placeholder="ahk_…" required autofocus>
<button type=submit>Sign in</button></form>""", status=status)


def _header(company: int) -> str:
    return (f"<header><strong>ahashdb</strong><span>company {company}</span>"
            "<a href=/review>duplicates</a><a href=/review/match>check an image</a>"
            "<form method=post action=/review/logout style='margin-left:auto'>"
            "<button>sign out</button></form></header>")


class Thumbnails:
    """Thumbnails made on demand from rows' sources inside the media roots, cached."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self._cache: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.placeholder = self._placeholder()

    @staticmethod
    def _placeholder() -> bytes:
        from PIL import Image, ImageDraw

        img = Image.new("RGB", THUMBNAIL, (233, 235, 239))
        draw = ImageDraw.Draw(img)
        draw.line((40, 40, 120, 120), fill=(150, 155, 165), width=6)
        draw.line((120, 40, 40, 120), fill=(150, 155, 165), width=6)
        out = io.BytesIO()
        img.save(out, "PNG")
        return out.getvalue()

    def _path(self, source: str | None) -> Path | None:
        if not source:
            return None
        parts = urlsplit(source)
        if parts.scheme == "file":
            source = unquote(parts.path)
        elif parts.scheme and len(parts.scheme) > 1:
            return None  # a URL: not fetched for thumbnails
        path = Path(source).resolve()
        return path if any(path.is_relative_to(root) for root in self.roots) else None

    def get(self, row_id: int, source: str | None) -> tuple[bytes, bool]:
        """(PNG bytes, True when it is the placeholder: source gone, unreadable or outside
        the media roots)."""
        key = (row_id, source or "")
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key], False
        path = self._path(source)
        if path is None:
            return self.placeholder, True
        from ..hashes import open_image

        try:
            img = open_image(path)
            img.thumbnail(THUMBNAIL)
            out = io.BytesIO()
            img.convert("RGBA" if "A" in img.getbands() else "RGB").save(out, "PNG")
        except (AhashdbError, OSError, ValueError):
            return self.placeholder, True
        data = out.getvalue()
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return data, False


def review_routes(settings: Any, pool: Any) -> APIRouter:
    """The review page's routes and the thumbnail endpoint."""
    router = APIRouter()
    url = settings.url
    thumbnails = Thumbnails(settings.media_roots)

    def signed_in(request: Request) -> str | None:
        try:
            return bearer_key(request)
        except Problem:
            return None

    @router.get("/review", response_class=HTMLResponse, summary="Review duplicate groups")
    def review(request: Request, max_distance: int = 4) -> HTMLResponse:
        key = signed_in(request)
        if key is None:
            return _signin()
        try:
            with tenant(pool, url, key) as (s, company):
                groups = list(s.duplicates(company_id=company,
                                           max_distance=max(0, min(max_distance, 16))))
        except Problem:
            return _signin("That key is unknown or revoked.", status=401)
        sections = []
        for n, group in enumerate(groups, 1):
            figures = "".join(
                f"<figure data-id={m.id}><img src='/v1/images/{m.id}/thumbnail'"
                f" alt='id {m.id}' loading=lazy><figcaption>id {m.id} · meta_id {m.meta_id}"
                f" · distance {m.distance}<br>{html.escape(m.source or '')}</figcaption>"
                f"<button data-action=keep data-keep={m.id}>Keep this one, delete the others"
                "</button></figure>" for m in group)
            ids = ",".join(str(m.id) for m in group)
            sections.append(
                f"<section class=group data-ids='{ids}'><h2>Group {n} · {len(group)} images"
                "<button data-action=apart>Not duplicates</button></h2>"
                f"<div class=members>{figures}</div></section>")
        body = "".join(sections) or "<p class=empty>No duplicate groups.</p>"
        return _page("ahashdb review", f"{_header(company)}<main><h1>Duplicate groups"
                     f" (within {max_distance} bits)</h1>{body}</main>", _SCRIPT)

    @router.get("/review/match", response_class=HTMLResponse,
                summary="Drop an image, see its matches")
    def match(request: Request) -> HTMLResponse:
        key = signed_in(request)
        if key is None:
            return _signin()
        with tenant(pool, url, key) as (_, company):
            pass
        return _page("ahashdb: check an image", f"{_header(company)}<main><h1>Check an image"
                     "</h1><p>Pick an image: its near-duplicates are shown; nothing is stored."
                     "</p><input id=pick type=file accept='image/*'><div id=matches"
                     " class=members></div></main>", _MATCH_SCRIPT)

    @router.post("/review/login", summary="Sign in to the review page with a key")
    def login(key: Annotated[str, Form()]) -> Response:
        try:
            with tenant(pool, url, key.strip()):
                pass
        except Problem:
            return _signin("That key is unknown or revoked.", status=401)
        response = RedirectResponse("/review", status_code=303)
        response.set_cookie("ahashdb_key", key.strip(), httponly=True, samesite="strict",
                            secure=False, path="/")
        return response

    @router.post("/review/logout", summary="Sign out")
    def logout() -> Response:
        response = RedirectResponse("/review", status_code=303)
        response.delete_cookie("ahashdb_key", path="/")
        return response

    @router.get("/v1/images/{row_id}/thumbnail", summary="A stored image's thumbnail (PNG)")
    def thumbnail(request: Request, row_id: int) -> Response:
        key = bearer_key(request)
        with tenant(pool, url, key) as (s, company):
            row = s.row(company_id=company, row_id=row_id)
        if row is None:
            raise Problem(404, "Not Found", f"no row {row_id}")
        data, placeholder = thumbnails.get(row_id, row.source)
        return Response(data, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=300",
                                 "X-Thumbnail": "placeholder" if placeholder else "image"})

    return router
