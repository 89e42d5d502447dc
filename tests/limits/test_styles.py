"""Limits on the Anthropic style's `/v1/messages`: the 429 and 402 come in Anthropic's error shape (the
SDK raises its own classes), `max_tokens` is reserved from, and the month is reconciled to the usage
the Anthropic answer reported."""

from __future__ import annotations

from typing import Any

import anthropic
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from keystore import Actor, KeystoreSettings

from proxy.app import create_app
from proxy.config import Config, PostgresConfig, ProviderConfig, RedisConfig
from proxy.limits.scripts import layout
from proxy.state import KEYSTORE, LIMITER
from tests.support.styles import ANTHROPIC_KEY, FakeAnthropic

HELLO = [{"role": "user", "content": "one two three"}]


@pytest.fixture
async def proxy(aiohttp_client: Any, aiohttp_server: Any, pool: asyncpg.Pool, database_url: str, redis_url: str,
                settings: KeystoreSettings) -> TestClient:
    upstream = await aiohttp_server(FakeAnthropic(ANTHROPIC_KEY).app)
    claude = ProviderConfig(name="claude", base_url=str(upstream.make_url("")).rstrip("/"), models=("sonnet",),
                            api="anthropic", api_key=ANTHROPIC_KEY)
    config = Config(postgres=PostgresConfig(dsn=database_url), keystore=settings, providers=(claude,),
                    redis=RedisConfig(url=redis_url, namespace=settings.namespace, timeout_seconds=1.0))
    return await aiohttp_client(create_app(config))


async def _sdk(proxy: TestClient, **limits: Any) -> tuple[str, anthropic.AsyncAnthropic]:
    issued = await proxy.app[KEYSTORE].create(Actor("test"), name="a", limits=limits)
    return issued.key.id, anthropic.AsyncAnthropic(api_key=issued.secret, base_url=str(proxy.make_url("")),
                                                   max_retries=0)


async def test_anthropic_clients_get_their_own_429_and_402(proxy: TestClient) -> None:
    _, client = await _sdk(proxy, requests_per_minute=1)
    await client.messages.create(model="claude/sonnet", max_tokens=20, messages=HELLO)
    with pytest.raises(anthropic.RateLimitError) as refused:
        await client.messages.create(model="claude/sonnet", max_tokens=20, messages=HELLO)
    assert refused.value.body["type"] == "error" and int(refused.value.response.headers["retry-after"]) >= 1
    _, broke = await _sdk(proxy, tokens_per_month=10)
    with pytest.raises(anthropic.APIStatusError) as over:
        await broke.messages.create(model="claude/sonnet", max_tokens=20, messages=HELLO)
    assert over.value.status_code == 402 and over.value.body["type"] == "error"
    await client.close()
    await broke.close()


async def test_a_messages_answer_is_reconciled_to_anthropic_usage(proxy: TestClient, redis: Redis) -> None:
    key_id, client = await _sdk(proxy, tokens_per_month=100_000)
    reply = await client.messages.create(model="claude/sonnet", max_tokens=500, messages=HELLO)
    await proxy.app[LIMITER].give_back()  # its allowance's rest too
    month = layout(proxy.app[LIMITER].namespace, key_id).month
    await client.close()
    u = reply.usage  # metering counts Anthropic's cache reads and writes as input (they are billed input)
    metered = u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0) + u.output_tokens
    assert int(float(await redis.hget(month, "tok"))) == metered
