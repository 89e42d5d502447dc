"""The operators' API Keys page on the admin listener: `/ui/keys` and its static files.

The page is plain HTML, CSS and ES modules from `proxy/admin/static/` (no build step, nothing fetched from
anywhere else). It signs in with the admin token, keeps it in `sessionStorage` and calls the
`/admin/…` REST API with it as a Bearer token; the page itself needs no token to load, and holds no
data until the API answers.

The server side fills the form's limits and choices into `index.html` from the validation table
(`rules.py`), so the form asks for what the API accepts: `{{name}}` placeholders, see `render_page()`.

Every page response carries a strict Content-Security-Policy: scripts, styles and connections from
this origin only, no inline script or style, no framing, no forms posting anywhere.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

from aiohttp import web

from proxy.admin import rules

STATIC_DIR = Path(__file__).parent / "static"
PAGE_PATH = "/ui/keys"
STATIC_PREFIX = "/ui/static/"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# The files the page may load, and their types: an explicit table, so nothing else in the
# directory (or outside it) can ever be served.
ASSETS: dict[str, str] = {
    "app.css": "text/css; charset=utf-8",
    "main.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "render.js": "text/javascript; charset=utf-8",
    "dialogs.js": "text/javascript; charset=utf-8",
    "limits.js": "text/javascript; charset=utf-8",
    "usage.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _page_values() -> dict[str, str]:
    options = "".join(f'<option value="{html.escape(s)}">{html.escape(s.capitalize())}</option>'
                      for s in rules.STATUSES)
    return {"name_max": str(rules.NAME_MAX), "account_max": str(rules.ACCOUNT_MAX), "status_options": options}


def render_page() -> str:
    """`index.html` with the validation table's values in place of its `{{name}}` placeholders."""
    text = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    for name, value in _page_values().items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:  # a placeholder nobody fills: fail loudly rather than show it to an operator
        raise RuntimeError(f"index.html has an unfilled placeholder near {text[text.index('{{'):][:40]!r}")
    return text


def setup(app: web.Application) -> None:
    """Add the page's routes: `/` and `/ui` redirect to `/ui/keys`; assets under `/ui/static/`."""
    app.router.add_get("/", _to_page)
    app.router.add_get("/ui", _to_page)
    app.router.add_get("/ui/", _to_page)
    app.router.add_get(PAGE_PATH, keys_page)
    app.router.add_get(STATIC_PREFIX + "{name}", asset)


async def _to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PAGE_PATH, headers=SECURITY_HEADERS)


async def keys_page(request: web.Request) -> web.StreamResponse:
    # no-store: the HTML is static, but a shared machine's cache should hold nothing of this page.
    headers = SECURITY_HEADERS | {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    body = await asyncio.to_thread(render_page)
    return web.Response(body=body.encode("utf-8"), headers=headers)


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    # no-cache: revalidate every time (FileResponse answers 304 from Last-Modified), so an upgrade
    # never leaves an operator with a stale script.
    headers = SECURITY_HEADERS | {"Content-Type": content_type, "Cache-Control": "no-cache"}
    return web.FileResponse(STATIC_DIR / name, headers=headers)
