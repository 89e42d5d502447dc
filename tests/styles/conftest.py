"""Fixtures for provider API styles: the three recording fake upstreams, a proxy app (create_app, real
Postgres, Redis and keystore) configured with one provider of each style,
keys issued through the app's KeyStore, and the real SDKs (anthropic, openai, AzureOpenAI) pointed at
the proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import asyncpg
import openai
import pytest
from aiohttp.test_utils import TestClient

from keystore import Actor, IssuedKey, KeyStore, KeystoreSettings

from proxy.app import create_app
from proxy.config import Config, PostgresConfig, ProviderConfig, RedisConfig, ServerConfig
from proxy.state import KEYSTORE
from tests.support import FakeClock
from tests.support.styles import (
    ANTHROPIC_KEY,
    AZURE_KEY,
    AZURE_VERSION,
    OPENAI_KEY,
    FakeAnthropic,
    FakeAzure,
    FakeResponses,
    Issue,
)

CLAUDE = ("claude-sonnet-4-5", "claude-haiku-4-5")


@pytest.fixture
async def upstreams(aiohttp_server: Any) -> dict[str, Any]:
    """The three fakes and their base URLs, as an operator would configure them."""
    fakes = {"claude": FakeAnthropic(ANTHROPIC_KEY), "oai": FakeResponses(OPENAI_KEY),
             "az": FakeAzure(AZURE_KEY, AZURE_VERSION, {"prod-gpt4o": "gpt-4o-2024-08-06",
                                                          "embed-small": "text-embedding-3-small"})}
    urls = {name: str((await aiohttp_server(fake.app)).make_url("")).rstrip("/") for name, fake in fakes.items()}
    return {"fakes": fakes, "urls": urls}


@pytest.fixture
def claude(upstreams: dict[str, Any]) -> FakeAnthropic:
    fake: FakeAnthropic = upstreams["fakes"]["claude"]
    return fake


@pytest.fixture
def oai(upstreams: dict[str, Any]) -> FakeResponses:
    fake: FakeResponses = upstreams["fakes"]["oai"]
    return fake


@pytest.fixture
def azure(upstreams: dict[str, Any]) -> FakeAzure:
    fake: FakeAzure = upstreams["fakes"]["az"]
    return fake


def style_providers(urls: dict[str, str], **extra: Any) -> tuple[ProviderConfig, ...]:
    return (
        ProviderConfig(name="claude", base_url=urls["claude"], models=CLAUDE, api="anthropic",
                       api_key=ANTHROPIC_KEY, **extra.get("claude", {})),
        ProviderConfig(name="oai", base_url=urls["oai"] + "/v1", models=("gpt-5", "gpt-5-mini"), api="openai",
                       api_key=OPENAI_KEY, **extra.get("oai", {})),
        ProviderConfig(name="az", base_url=urls["az"], models=("gpt-4o", "text-embedding-3-small"), api="azure",
                       api_key=AZURE_KEY, api_version=AZURE_VERSION,
                       deployments={"gpt-4o": "prod-gpt4o", "text-embedding-3-small": "embed-small"},
                       **extra.get("az", {})),
    )


@pytest.fixture
def provider_extra() -> dict[str, Any]:
    """Per-provider config additions a test module may override (e.g. `endpoints`)."""
    return {}


@pytest.fixture
def config(database_url: str, redis_url: str, settings: KeystoreSettings, upstreams: dict[str, Any],
           provider_extra: dict[str, Any]) -> Config:
    return Config(
        postgres=PostgresConfig(dsn=database_url, timeout_seconds=2.0, connect_timeout_seconds=2.0),
        redis=RedisConfig(url=redis_url, namespace=settings.namespace, timeout_seconds=1.0,
                          connect_timeout_seconds=1.0),
        keystore=settings, server=ServerConfig(max_body_bytes=64 * 1024),
        providers=style_providers(upstreams["urls"], **provider_extra),
        aliases={"sonnet": "claude/claude-sonnet-4-5"})


@pytest.fixture
async def proxy(aiohttp_client: Any, pool: asyncpg.Pool, config: Config, clock: FakeClock) -> TestClient:
    await pool.execute("TRUNCATE response_owners")
    return await aiohttp_client(create_app(config, clock=clock))


@pytest.fixture
def issue(proxy: TestClient) -> Issue:
    async def create(name: str = "test", **kw: Any) -> IssuedKey:
        store: KeyStore = proxy.app[KEYSTORE]
        return await store.create(Actor("test"), name=name, **kw)
    return create


@pytest.fixture
async def key(issue: Issue) -> str:
    return (await issue()).secret


@pytest.fixture
async def clients(proxy: TestClient) -> AsyncIterator[dict[str, Callable[..., Any]]]:
    """Factories for the real SDKs pointed at the proxy (closed at teardown)."""
    made: list[Any] = []
    root = str(proxy.make_url("")).rstrip("/")

    def keep(client: Any) -> Any:
        made.append(client)
        return client

    yield {
        "anthropic": lambda key, **kw: keep(anthropic.AsyncAnthropic(base_url=root, api_key=key, max_retries=0, **kw)),
        "openai": lambda key, **kw: keep(openai.AsyncOpenAI(base_url=root + "/v1", api_key=key, max_retries=0, **kw)),
        "azure": lambda key, **kw: keep(openai.AsyncAzureOpenAI(azure_endpoint=root, api_key=key,
                                                                api_version=AZURE_VERSION, max_retries=0, **kw)),
    }
    for client in made:
        await client.close()
