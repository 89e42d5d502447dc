"""Fixtures for the request path: a recording fake provider, a proxy app built by `create_app()` in
front of it (real Postgres, Redis and keystore), keys issued through the app's own KeyStore, and
OpenAI SDK clients pointed at the proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from openai import AsyncOpenAI

from keystore import Actor, KeyStore, KeystoreSettings

from proxy.app import create_app
from proxy.config import Config
from proxy.state import KEYSTORE
from tests.support import FakeClock
from tests.support.fakes import FakeProvider
from tests.support.proxy import (
    DEMO_MODELS,
    PROVIDER_KEY,
    IssueKey,
    proxy_config,
)

# old import paths: import these from tests.support.proxy
__all__ = [
    "DEMO_MODELS",
    "PROVIDER_KEY",
    "IssueKey",
    "proxy_config",
]


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def provider_url(aiohttp_server: Any, fake: FakeProvider) -> str:
    server = await aiohttp_server(fake.app)
    return str(server.make_url("/v1"))


@pytest.fixture
def config(database_url: str, redis_url: str, settings: KeystoreSettings, provider_url: str) -> Config:
    return proxy_config(database_url, redis_url, settings, provider_url)


@pytest.fixture
async def proxy(aiohttp_client: Any, pool: asyncpg.Pool, config: Config, clock: FakeClock) -> TestClient:
    """The proxy app under test (`pool` migrates and truncates the test database first)."""
    return await aiohttp_client(create_app(config, clock=clock))


@pytest.fixture
def issue(proxy: TestClient) -> IssueKey:
    """Create a key through the running app's KeyStore; returns the full `th-…` key."""
    async def create(name: str = "test", **kw: Any) -> str:
        store: KeyStore = proxy.app[KEYSTORE]
        return (await store.create(Actor("test"), name=name, **kw)).secret
    return create


@pytest.fixture
async def key(issue: IssueKey) -> str:
    return await issue()


@pytest.fixture
async def sdk(proxy: TestClient) -> AsyncIterator[Callable[..., AsyncOpenAI]]:
    """Make AsyncOpenAI clients whose base_url is the proxy (closed at teardown)."""
    made: list[AsyncOpenAI] = []

    def make(api_key: str, **kw: Any) -> AsyncOpenAI:
        client = AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key=api_key, max_retries=0, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
