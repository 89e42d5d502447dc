"""Helpers of the API Keys page tests: the stack behind the page and a Chromium tab driven by Playwright."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from keystore import KeystoreSettings

from proxy.config import AdminConfig, Config, PostgresConfig, ProviderConfig, RedisConfig
from tests.support.procs import ADMIN_TOKEN  # the one admin token of every test stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
Providers = tuple[tuple[str, tuple[str, ...]], ...]
PROVIDERS: Providers = (("demo", ("echo", "echo-mini", "embed-small")), ("labs", ("echo",)))


@dataclass
class Stack:
    """The running listeners: `proxy` (the /v1/ API) and `admin` (the page and /admin/)."""

    proxy: TestServer
    admin: TestServer
    http: aiohttp.ClientSession

    @property
    def page_url(self) -> str:
        return str(self.admin.make_url("/"))

    async def chat(self, key: str, model: str = "demo/echo") -> int:
        """One chat completion through the proxy with `key`; returns the status."""
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
        async with self.http.post(self.proxy.make_url("/v1/chat/completions"), json=body,
                                  headers={"Authorization": f"Bearer {key}"}) as resp:
            await resp.read()
            return resp.status

    async def admin_call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.http.request(method, self.admin.make_url(path), headers=headers, **kw) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()


def page_config(database_url: str, redis_url: str, settings: KeystoreSettings, provider_url: str,
                providers: Providers = PROVIDERS) -> Config:
    configured = tuple(ProviderConfig(name=name, base_url=provider_url, models=models) for name, models in providers)
    return Config(
        admin=AdminConfig(tokens={"admin": ADMIN_TOKEN}),
        postgres=PostgresConfig(dsn=database_url),
        redis=RedisConfig(url=redis_url, namespace=settings.namespace),
        keystore=settings,
        providers=configured,
    )


StartStack = Callable[..., Awaitable[Stack]]


@dataclass
class Tab:
    """A browser tab on the page, recording console errors and failed page requests."""

    page: Page
    problems: list[str] = field(default_factory=list)

    async def sign_in(self, token: str = ADMIN_TOKEN) -> None:
        await self.page.get_by_label("Admin token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()

    async def create_key(self, name: str, *, account: str = "", models: tuple[str, ...] = (),
                         providers: tuple[str, ...] = (), expires: str = "") -> str:
        """Fill the New API Key dialog, create, and return the key the secret dialog shows."""
        page = self.page
        await page.get_by_role("button", name="New API Key").click()
        dialog = page.get_by_role("dialog", name="New API Key")
        await dialog.get_by_label("Name").fill(name)
        if account:
            await dialog.get_by_label("Account").fill(account)
        if expires:
            await dialog.get_by_label("Expiration date").fill(expires)
        for provider in providers:
            await dialog.get_by_role("checkbox", name=provider, exact=True).check()
        for model in models:
            await dialog.get_by_role("checkbox", name=model, exact=True).check()
        await dialog.get_by_role("button", name="Create key").click()
        return await self.read_secret()

    async def read_secret(self) -> str:
        secret = self.page.get_by_role("dialog", name="Save your API key")
        key = await secret.get_by_label("API key").input_value()
        assert key.startswith("th-")
        return key

    async def close_secret(self) -> None:
        await self.page.get_by_role("dialog", name="Save your API key").get_by_role("button", name="Done").click()

    def row(self, name: str) -> Any:
        """The table row of the key named `name` (exactly one must exist when used)."""
        cell = self.page.get_by_role("cell", name=name, exact=True)
        return self.page.get_by_role("row").filter(has=cell)


OpenTab = Callable[[Stack], Awaitable[Tab]]
