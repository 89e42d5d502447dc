"""How the admin listener serves the API Keys page: routes, security headers, the static files."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from proxy.admin import page
from tests.support.page import Stack

FORBIDDEN_IN_CSP = ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:")


class _Tags(HTMLParser):
    """Every start tag of a document with its attributes, and the text inside <script>/<style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_code: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.inline_code.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


async def test_root_redirects_to_the_keys_page(page_stack: Stack) -> None:
    for path in ("/", "/ui", "/ui/"):
        async with page_stack.http.get(page_stack.admin.make_url(path), allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["Location"] == "/ui/keys"


async def test_page_has_a_strict_content_security_policy(page_stack: Stack) -> None:
    async with page_stack.http.get(page_stack.admin.make_url("/ui/keys")) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "x-request-id" in resp.headers
    directives = dict(d.strip().partition(" ")[::2] for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert not [bad for value in directives.values() for bad in FORBIDDEN_IN_CSP if bad in value.split()]


def test_page_has_no_inline_script_style_or_handlers() -> None:
    doc = _parse((page.STATIC_DIR / "index.html").read_text())
    assert doc.inline_code == []
    scripts = [attrs for tag, attrs in doc.tags if tag == "script"]
    assert scripts and all(str(a.get("src", "")).startswith(page.STATIC_PREFIX) for a in scripts)
    for tag, attrs in doc.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
        for name in ("href", "src"):
            assert not str(attrs.get(name) or "").startswith(("http:", "https:", "//", "javascript:")), attrs


def test_static_files_fetch_nothing_from_elsewhere() -> None:
    """No CDN, no web font, no remote script: the only absolute URL allowed is the SVG namespace."""
    for path in page.STATIC_DIR.iterdir():
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), path.name
        # API data only ever enters the page as text: no HTML sinks, no code from strings.
        assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function",
                             text), path.name


def test_every_static_file_is_listed_and_every_listed_file_exists() -> None:
    on_disk = {p.name for p in page.STATIC_DIR.iterdir()} - {"index.html"}
    assert on_disk == set(page.ASSETS)
    referenced = set(re.findall(r'"/ui/static/([\w.-]+)"', (page.STATIC_DIR / "index.html").read_text()))
    for module in page.STATIC_DIR.glob("*.js"):
        referenced |= set(re.findall(r'from "\./([\w.-]+)"', module.read_text()))
    assert referenced <= set(page.ASSETS)


@pytest.mark.parametrize("name", sorted(page.ASSETS))
async def test_assets_are_served_with_their_type_and_the_policy(page_stack: Stack, name: str) -> None:
    async with page_stack.http.get(page_stack.admin.make_url(page.STATIC_PREFIX + name)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == page.ASSETS[name]
        assert resp.headers["Content-Security-Policy"] == page.CSP
        assert await resp.read() == (page.STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("path", [
    "/ui/static/index.html", "/ui/static/nope.js", "/ui/static/..%2Fpage.py", "/ui/static/%2e%2e/page.py",
    "/ui/static/../page.py", "/ui/static/../../pyproject.toml",
])
async def test_nothing_else_is_served(page_stack: Stack, path: str) -> None:
    async with page_stack.http.get(page_stack.admin.make_url(path), allow_redirects=False) as resp:
        body: Any = await resp.read()
        assert resp.status == 404
        assert b"def setup" not in body and b"[project]" not in body


async def test_the_page_does_not_open_the_admin_api(page_stack: Stack) -> None:
    async with page_stack.http.get(page_stack.admin.make_url("/admin/keys")) as resp:
        assert resp.status == 401
