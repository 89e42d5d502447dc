"""Fixtures for the API Keys page: a real page_stack (demo provider, proxy app, admin app, all on real
sockets, real Postgres and Redis) and Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from keystore import KeystoreSettings

from proxy.app import create_admin_app, create_app
from proxy.runtime.demo import create_demo_app
from tests.support.page import (
    ADMIN_TOKEN,
    CHROMIUM,
    CHROMIUM_ARGS,
    PROVIDERS,
    OpenTab,
    Providers,
    Stack,
    StartStack,
    Tab,
    page_config,
)

# old import paths: import these from tests.support.page
__all__ = [
    "ADMIN_TOKEN",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "PROVIDERS",
    "OpenTab",
    "Providers",
    "Stack",
    "StartStack",
    "Tab",
    "page_config",
]


@pytest.fixture
async def start_stack(aiohttp_server: Any, pool: asyncpg.Pool, database_url: str, redis_url: str,
                      settings: KeystoreSettings) -> AsyncIterator[StartStack]:
    """Start the page_stack with the given providers; the demo app (serving all their models) stands in
    for every one of them. `pool` migrates and truncates the test database first."""
    sessions: list[aiohttp.ClientSession] = []

    async def start(providers: Providers = PROVIDERS, **keystore: Any) -> Stack:
        models = {m for _, names in providers for m in names}
        provider = await aiohttp_server(create_demo_app(models=sorted(models)))
        config = page_config(database_url, redis_url, replace(settings, **keystore), str(provider.make_url("/v1")),
                             providers)
        proxy_app = create_app(config)
        proxy = await aiohttp_server(proxy_app)  # started first: the admin app shares its keystore
        admin = await aiohttp_server(create_admin_app(config, proxy_app))
        sessions.append(aiohttp.ClientSession())
        return Stack(proxy=proxy, admin=admin, http=sessions[-1])

    yield start
    for session in sessions:
        await session.close()


@pytest.fixture
async def page_stack(start_stack: StartStack) -> Stack:
    return await start_stack()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def open_tab(browser: Browser) -> AsyncIterator[OpenTab]:
    """Open the page of a page_stack in a fresh browser context (1440x900, en-US, UTC)."""
    contexts: list[BrowserContext] = []

    async def open_(page_stack: Stack) -> Tab:
        context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US",
                                            timezone_id="UTC")
        contexts.append(context)
        context.set_default_timeout(10_000)
        page = await context.new_page()
        tab = Tab(page)
        page.on("console", lambda m: tab.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: tab.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: tab.problems.append(f"request failed: {r.url}"))
        await page.goto(page_stack.page_url)
        return tab

    yield open_
    for context in contexts:
        await context.close()


@pytest.fixture
async def tab(open_tab: OpenTab, page_stack: Stack) -> Tab:
    return await open_tab(page_stack)
